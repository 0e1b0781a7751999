-- no-transaction
-- An expired voucher with a balance may be exchanged for a new one (src/domain/vouchers.rs):
-- the old code becomes `exchanged` and the new voucher names the one it replaced. A voucher is
-- exchanged at most once (the unique index is the backstop to the ledger's refusal).
-- SQLite cannot widen a CHECK in place: the table is rebuilt, with foreign keys off while the
-- old one is dropped and the new one takes its name (topups and sale_tenders keep pointing at
-- `vouchers` by name), and checked again before the transaction commits.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE vouchers_new (
    id              INTEGER PRIMARY KEY,
    serial          INTEGER NOT NULL UNIQUE,
    key_id          INTEGER NOT NULL,
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    household_id    INTEGER REFERENCES households(id),
    issued_on       TEXT NOT NULL,
    expires_on      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'void', 'expired', 'exchanged')),
    exchanged_from  INTEGER REFERENCES vouchers(id)
) STRICT;
INSERT INTO vouchers_new (id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status)
SELECT id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers;
DROP TABLE vouchers;
ALTER TABLE vouchers_new RENAME TO vouchers;
CREATE INDEX vouchers_by_household ON vouchers(household_id);
CREATE INDEX vouchers_active_by_expiry ON vouchers(expires_on) WHERE status = 'active';
CREATE INDEX vouchers_expired_by_expiry ON vouchers(expires_on) WHERE status = 'expired';
CREATE UNIQUE INDEX vouchers_by_exchanged_from ON vouchers(exchanged_from) WHERE exchanged_from IS NOT NULL;
PRAGMA foreign_key_check;
COMMIT;
PRAGMA foreign_keys = ON;
