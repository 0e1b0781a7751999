-- An expired voucher with a balance may be exchanged for a new one (src/domain/vouchers.rs):
-- the old code becomes `exchanged` and the new voucher names the one it replaced. A voucher is
-- exchanged at most once (the unique index is the backstop to the ledger's refusal).
ALTER TABLE vouchers DROP CONSTRAINT vouchers_status_check;
ALTER TABLE vouchers ADD CONSTRAINT vouchers_status_check
    CHECK (status IN ('active', 'void', 'expired', 'exchanged'));
ALTER TABLE vouchers ADD COLUMN exchanged_from BIGINT REFERENCES vouchers(id);
CREATE INDEX vouchers_expired_by_expiry ON vouchers(expires_on) WHERE status = 'expired';
CREATE UNIQUE INDEX vouchers_by_exchanged_from ON vouchers(exchanged_from) WHERE exchanged_from IS NOT NULL;
