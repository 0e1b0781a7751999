-- Takes a database back to before migrations/postgres/0007_pin_lockout.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
ALTER TABLE households DROP COLUMN pin_locked_until;
ALTER TABLE households DROP COLUMN pin_failures;
