-- Takes a database back to before migrations/postgres/0022_paid_credit_months.sql, as the
-- release before it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER paid_credit_posted ON postings;
DROP TRIGGER paid_credit_voucher_written ON vouchers;
DROP FUNCTION hongxin_paid_credit_posted();
DROP FUNCTION hongxin_paid_credit_voucher_written();
DROP TABLE paid_credit_months_pending;
DROP FUNCTION hongxin_paid_credit_fold();
DROP TABLE paid_credit_months;
