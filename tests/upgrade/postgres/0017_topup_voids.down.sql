-- Takes a database back to before migrations/postgres/0017_topup_voids.sql, as the release before
-- it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER programme_topup_voided ON topups;
DROP FUNCTION hongxin_programme_topup_voided();
ALTER TABLE topups DROP COLUMN void_entry_id;
CREATE OR REPLACE FUNCTION hongxin_programme_topped_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, COUNT(*),
           COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM topups t WHERE t.household_id = n.household_id AND t.month = n.month
                 AND t.entry_id NOT IN (SELECT entry_id FROM new_rows))),
           SUM(n.paid), SUM(n.bonus)
    FROM new_rows n JOIN households h ON h.id = n.household_id
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
