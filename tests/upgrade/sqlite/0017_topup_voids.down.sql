-- Takes a database back to before migrations/sqlite/0017_topup_voids.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER programme_topup_voided;
DROP TRIGGER programme_topup_unvoided;
DROP TRIGGER programme_topped_up;
ALTER TABLE topups DROP COLUMN void_entry_id;
CREATE TRIGGER programme_topped_up AFTER INSERT ON topups
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, 1,
           NOT EXISTS (SELECT 1 FROM topups t WHERE t.household_id = NEW.household_id
                       AND t.month = NEW.month AND t.entry_id <> NEW.entry_id),
           NEW.paid, NEW.bonus
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        topups = topups + 1, topup_households = topup_households + excluded.topup_households,
        credit_sold = credit_sold + excluded.credit_sold, bonus_granted = bonus_granted + excluded.bonus_granted;
END;
