-- Takes a database back to before migrations/postgres/0015_alliance.sql, as the release before
-- it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP TRIGGER programme_bills_made ON fee_bills;
DROP TRIGGER programme_bills_settled ON fee_bills;
DROP TRIGGER programme_fees_paid ON fee_credits;
DROP TRIGGER programme_months_closed ON month_closes;
DROP TRIGGER programme_topped_up ON topups;
DROP TRIGGER programme_tendered ON sale_tenders;
DROP TRIGGER programme_refunded ON sale_refund_tenders;
DROP TABLE programme_months_pending;
DROP TABLE coop_months_pending;
DROP FUNCTION hongxin_programme_bills_made();
DROP FUNCTION hongxin_programme_bills_settled();
DROP FUNCTION hongxin_programme_fees_paid();
DROP FUNCTION hongxin_programme_months_closed();
DROP FUNCTION hongxin_programme_topped_up();
DROP FUNCTION hongxin_programme_tendered();
DROP FUNCTION hongxin_programme_refunded();
DROP FUNCTION hongxin_programme_fold();
DROP TABLE programme_months;
DROP TABLE coop_months;
DROP INDEX entries_unplaced;

DELETE FROM tokens WHERE role = 'alliance';
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
    CHECK (role IN ('admin', 'cashier', 'coop_accountant', 'company', 'resident'));

ALTER TABLE compounds DROP COLUMN taken_over_on;
DROP INDEX households_by_place;
ALTER TABLE households DROP COLUMN grid;
ALTER TABLE households DROP COLUMN building;
