-- A top-up voided (作废) at the till the same day, or later by the cooperative's accountant:
-- the entry that reversed it (its actor and time say who and when; the entry `reverses` the
-- top-up in the hash chain, which `verify` holds this column to). A voided top-up grants no
-- bonus towards the monthly cap and counts in no programme figure.
ALTER TABLE topups ADD COLUMN void_entry_id BIGINT REFERENCES entries(id);

-- A household's first top-up of the month is its first one not voided.
CREATE OR REPLACE FUNCTION hongxin_programme_topped_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, COUNT(*),
           COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM topups t WHERE t.household_id = n.household_id AND t.month = n.month
                 AND t.void_entry_id IS NULL
                 AND t.entry_id NOT IN (SELECT entry_id FROM new_rows))),
           SUM(n.paid), SUM(n.bonus)
    FROM new_rows n JOIN households h ON h.id = n.household_id
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

-- A void takes the top-up out of its month's figures (the month it was sold in), and the
-- household out of the month's top-up households when it has no other top-up left there. A
-- marker taken off again (only by hand: hongxin never does) puts it back, so the figures always
-- follow the column.
CREATE FUNCTION hongxin_programme_topup_voided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, -COUNT(*),
           -COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM topups t WHERE t.household_id = n.household_id AND t.month = n.month
                 AND t.void_entry_id IS NULL)),
           -SUM(n.paid), -SUM(n.bonus)
    FROM new_rows n JOIN old_rows o ON o.entry_id = n.entry_id JOIN households h ON h.id = n.household_id
    WHERE o.void_entry_id IS NULL AND n.void_entry_id IS NOT NULL
    GROUP BY 1, 2, 3, 4;
    INSERT INTO programme_months_pending (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, COUNT(*),
           COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM topups t WHERE t.household_id = n.household_id AND t.month = n.month
                 AND t.void_entry_id IS NULL
                 AND t.entry_id NOT IN (SELECT entry_id FROM new_rows))),
           SUM(n.paid), SUM(n.bonus)
    FROM new_rows n JOIN old_rows o ON o.entry_id = n.entry_id JOIN households h ON h.id = n.household_id
    WHERE o.void_entry_id IS NOT NULL AND n.void_entry_id IS NULL
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_topup_voided AFTER UPDATE ON topups
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_topup_voided();
