-- Changes to master data after it was made (issue 14, life events): a compound's eligibility for
-- spend-50-get-55 from a day, a household's floor area from a billing month, a compound's move
-- to another company from a month, and corrected names. Each is a master data entry in the hash
-- chain whose fact names this row (src/domain/master.rs, verify in src/ledger/audit.rs); the
-- entry says who (actor) and when (created_at, business date).
--
-- The master table's column holds the latest value; what was in force on a day D is the
-- old_value of the first change of that field effective after D, if any, else the column
-- (changes of one field are recorded in the order of their effective dates, so those after D
-- are the last ones). Values are text: 'true'/'false', a company id, an area in dm², a name.
CREATE TABLE master_changes (
    id              INTEGER PRIMARY KEY,
    entry_id        INTEGER NOT NULL REFERENCES entries(id),
    subject         TEXT NOT NULL CHECK (subject IN ('cooperative', 'shop', 'company', 'compound', 'household')),
    subject_id      INTEGER NOT NULL,
    field           TEXT NOT NULL CHECK (field IN ('name', 'eligible', 'company', 'area')),
    old_value       TEXT,
    new_value       TEXT NOT NULL,
    effective_from  TEXT NOT NULL
) STRICT;
CREATE INDEX master_changes_in_force ON master_changes(field, subject_id, effective_from);
