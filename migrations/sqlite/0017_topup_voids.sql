-- A top-up voided (作废) at the till the same day, or later by the cooperative's accountant:
-- the entry that reversed it (its actor and time say who and when; the entry `reverses` the
-- top-up in the hash chain, which `verify` holds this column to). A voided top-up grants no
-- bonus towards the monthly cap and counts in no programme figure. No foreign key: SQLite
-- cannot drop a column that has one, and the upgrade test takes this migration back.
ALTER TABLE topups ADD COLUMN void_entry_id INTEGER;

-- A household's first top-up of the month is its first one not voided.
DROP TRIGGER programme_topped_up;
CREATE TRIGGER programme_topped_up AFTER INSERT ON topups
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, 1,
           NOT EXISTS (SELECT 1 FROM topups t WHERE t.household_id = NEW.household_id
                       AND t.month = NEW.month AND t.entry_id <> NEW.entry_id
                       AND t.void_entry_id IS NULL),
           NEW.paid, NEW.bonus
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        topups = topups + 1, topup_households = topup_households + excluded.topup_households,
        credit_sold = credit_sold + excluded.credit_sold, bonus_granted = bonus_granted + excluded.bonus_granted;
END;

-- A void takes the top-up out of its month's figures (the month it was sold in), and the
-- household out of the month's top-up households when it has no other top-up left there.
CREATE TRIGGER programme_topup_voided AFTER UPDATE OF void_entry_id ON topups
WHEN OLD.void_entry_id IS NULL AND NEW.void_entry_id IS NOT NULL
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, -1,
           -(NOT EXISTS (SELECT 1 FROM topups t WHERE t.household_id = NEW.household_id
                         AND t.month = NEW.month AND t.void_entry_id IS NULL)),
           -NEW.paid, -NEW.bonus
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        topups = topups + excluded.topups, topup_households = topup_households + excluded.topup_households,
        credit_sold = credit_sold + excluded.credit_sold, bonus_granted = bonus_granted + excluded.bonus_granted;
END;

-- A marker taken off again (only by hand: hongxin never does) puts the top-up back, so the
-- figures always follow the column.
CREATE TRIGGER programme_topup_unvoided AFTER UPDATE OF void_entry_id ON topups
WHEN OLD.void_entry_id IS NOT NULL AND NEW.void_entry_id IS NULL
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, 1,
           NOT EXISTS (SELECT 1 FROM topups t WHERE t.household_id = NEW.household_id
                       AND t.month = NEW.month AND t.entry_id <> NEW.entry_id
                       AND t.void_entry_id IS NULL),
           NEW.paid, NEW.bonus
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        topups = topups + excluded.topups, topup_households = topup_households + excluded.topup_households,
        credit_sold = credit_sold + excluded.credit_sold, bonus_granted = bonus_granted + excluded.bonus_granted;
END;
