-- Takes a database back to before migrations/sqlite/0019_voucher_exchange.sql, as the release
-- before it left it: the upgrade test (tests/upgrade.rs) then upgrades it again. The table is
-- rebuilt with the narrower CHECK, as the migration rebuilt it with the wider one.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE vouchers_old (
    id              INTEGER PRIMARY KEY,
    serial          INTEGER NOT NULL UNIQUE,
    key_id          INTEGER NOT NULL,
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    household_id    INTEGER REFERENCES households(id),
    issued_on       TEXT NOT NULL,
    expires_on      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'void', 'expired'))
) STRICT;
INSERT INTO vouchers_old (id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status)
SELECT id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers;
DROP TABLE vouchers;
ALTER TABLE vouchers_old RENAME TO vouchers;
CREATE INDEX vouchers_by_household ON vouchers(household_id);
CREATE INDEX vouchers_active_by_expiry ON vouchers(expires_on) WHERE status = 'active';
COMMIT;
PRAGMA foreign_keys = ON;
