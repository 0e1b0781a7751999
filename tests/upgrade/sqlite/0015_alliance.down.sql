-- Takes a database back to before migrations/sqlite/0015_alliance.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER programme_bill_made;
DROP TRIGGER programme_bill_settled;
DROP TRIGGER programme_fee_paid;
DROP TRIGGER programme_month_closed;
DROP TRIGGER programme_topped_up;
DROP TRIGGER programme_tendered;
DROP TRIGGER programme_refunded;
DROP TABLE programme_months;
DROP TABLE coop_months;

-- The tokens table goes back to the roles it had (no alliance tokens existed before).
DELETE FROM tokens WHERE role = 'alliance';
PRAGMA defer_foreign_keys = ON;
CREATE TABLE tokens_old (
    id              INTEGER PRIMARY KEY,
    hash            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'cashier', 'coop_accountant', 'company', 'resident')),
    cooperative_id  INTEGER REFERENCES cooperatives(id),
    shop_id         INTEGER REFERENCES shops(id),
    company_id      INTEGER REFERENCES companies(id),
    household_id    INTEGER REFERENCES households(id),
    label           TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    parent_id       INTEGER REFERENCES tokens_old(id)
) STRICT;
INSERT INTO tokens_old SELECT id, hash, role, cooperative_id, shop_id, company_id, household_id,
    label, created_at, expires_at, revoked_at, parent_id FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_old RENAME TO tokens;
CREATE INDEX tokens_by_parent ON tokens(parent_id) WHERE parent_id IS NOT NULL;

ALTER TABLE compounds DROP COLUMN taken_over_on;
DROP INDEX households_by_place;
ALTER TABLE households DROP COLUMN grid;
ALTER TABLE households DROP COLUMN building;
