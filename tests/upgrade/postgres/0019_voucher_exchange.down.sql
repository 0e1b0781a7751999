-- Takes a database back to before migrations/postgres/0019_voucher_exchange.sql, as the release
-- before it left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP INDEX vouchers_by_exchanged_from;
DROP INDEX vouchers_expired_by_expiry;
ALTER TABLE vouchers DROP COLUMN exchanged_from;
ALTER TABLE vouchers DROP CONSTRAINT vouchers_status_check;
ALTER TABLE vouchers ADD CONSTRAINT vouchers_status_check
    CHECK (status IN ('active', 'void', 'expired'));
