-- An expired voucher with a balance may be exchanged for a new one (src/domain/vouchers.rs):
-- the old code becomes `exchanged` and the new voucher names the one it replaced. A voucher is
-- exchanged at most once (the unique index is the backstop to the ledger's refusal).
ALTER TABLE vouchers ADD COLUMN exchanged_from INTEGER REFERENCES vouchers(id);
CREATE INDEX vouchers_expired_by_expiry ON vouchers(expires_on) WHERE status = 'expired';
CREATE UNIQUE INDEX vouchers_by_exchanged_from ON vouchers(exchanged_from) WHERE exchanged_from IS NOT NULL;
-- SQLite cannot alter a CHECK, and rebuilding the table inside the migration's transaction
-- would trip the foreign keys of topups and sale_tenders. Widening a CHECK is the case SQLite's
-- documentation allows editing the stored schema for (https://sqlite.org/lang_altertable.html,
-- "otherwise"): every row that passed the old check passes the new one. RESET makes this
-- connection (the writer's, from here on) read the schema again.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (status IN (''active'', ''void'', ''expired''))',
                       'CHECK (status IN (''active'', ''void'', ''expired'', ''exchanged''))')
WHERE type = 'table' AND name = 'vouchers';
PRAGMA writable_schema = RESET;
