-- Takes a database back to before migrations/sqlite/0022_paid_credit_months.sql, as the release
-- before it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER paid_credit_posted;
DROP TRIGGER paid_credit_voucher_written;
DROP TABLE paid_credit_months;
