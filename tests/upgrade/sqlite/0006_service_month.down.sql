-- Takes a database back to before migrations/sqlite/0006_service_month.sql, as the release
-- before it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP VIEW entry_months;
DROP INDEX fee_bills_by_entry;
DROP INDEX month_closes_by_entry;
DROP INDEX sale_refund_tenders_by_tender;
DROP TABLE sale_refund_tenders;
