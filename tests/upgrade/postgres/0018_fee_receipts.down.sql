-- Takes a database back to before migrations/postgres/0018_fee_receipts.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TABLE fee_receipts;
