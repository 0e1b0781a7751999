-- Takes a database back to before migrations/postgres/0021_master_changes.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TABLE master_changes;
