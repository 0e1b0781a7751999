-- A closed month keeps every household's share in one JSON document on its own row instead of a
-- row per household: an array of [household id, company id, weight, cap or null, amount]. At a
-- million households the rows cost seconds to write and their index as much again; the document
-- is one write, and `hongxin verify` recomputes every household's share from it all the same.
ALTER TABLE month_closes ADD COLUMN shares TEXT NOT NULL DEFAULT '[]';

UPDATE month_closes SET shares = (
    SELECT json_group_array(json_array(s.household_id, s.company_id, s.weight, s.cap, s.amount))
    FROM month_close_shares s
    WHERE s.cooperative_id = month_closes.cooperative_id AND s.month = month_closes.month
);

DROP TABLE month_close_shares;

-- A bill says whether it is still open in a column of its own, held to `settled` by a CHECK, and
-- the index of open bills is keyed on that column: a payment or allocation that covers part of
-- a bill then leaves the index alone (SQLite rewrites a partial index whenever a column of its
-- WHERE clause is assigned), and only a bill that closes leaves it. A close that settles a
-- million bills saves a million index rewrites. SQLite cannot add a column whose CHECK fails on
-- rows already there, so the table is rebuilt; nothing references it.
CREATE TABLE fee_bills_new (
    id            INTEGER PRIMARY KEY,
    household_id  INTEGER NOT NULL REFERENCES households(id),
    company_id    INTEGER NOT NULL REFERENCES companies(id),
    month         TEXT NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    settled       INTEGER NOT NULL DEFAULT 0 CHECK (settled >= 0 AND settled <= amount),
    entry_id      INTEGER NOT NULL REFERENCES entries(id),
    open          INTEGER NOT NULL CHECK (open = (settled < amount)),
    UNIQUE (household_id, month)
) STRICT;
INSERT INTO fee_bills_new (id, household_id, company_id, month, amount, settled, entry_id, open)
SELECT id, household_id, company_id, month, amount, settled, entry_id, settled < amount FROM fee_bills;
DROP TABLE fee_bills;
ALTER TABLE fee_bills_new RENAME TO fee_bills;
CREATE INDEX fee_bills_open ON fee_bills(household_id, month) WHERE open = 1;
CREATE INDEX fee_bills_by_company ON fee_bills(company_id, month);
