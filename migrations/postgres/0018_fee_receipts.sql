-- Numbered fee receipts (收据): one gapless sequence per company, over the payments its office
-- records and those a cooperative's till collects on its behalf (cooperative and shop set).
-- The number is given inside the single writer, in the payment's transaction, and the payment
-- entry's hashed facts name it (src/fees/mod.rs; `verify` holds this table to them).
CREATE TABLE fee_receipts (
    company_id      BIGINT NOT NULL REFERENCES companies(id),
    number          BIGINT NOT NULL CHECK (number > 0),
    entry_id        BIGINT NOT NULL UNIQUE REFERENCES entries(id),
    household_id    BIGINT NOT NULL REFERENCES households(id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    method          TEXT NOT NULL,
    cooperative_id  BIGINT REFERENCES cooperatives(id),
    shop_id         BIGINT REFERENCES shops(id),
    PRIMARY KEY (company_id, number)
);

-- Receipts the chain already names (a database taken back to before this table and upgraded
-- again) are rebuilt from the entries' hashed facts; a ledger from before receipts has none.
INSERT INTO fee_receipts (company_id, number, entry_id, household_id, amount, method,
                          cooperative_id, shop_id)
SELECT (facts::jsonb->>'company')::BIGINT, (facts::jsonb->>'number')::BIGINT, id,
       (facts::jsonb->>'household')::BIGINT, (facts::jsonb->>'amount')::BIGINT,
       facts::jsonb->>'method', (facts::jsonb->>'cooperative')::BIGINT,
       (facts::jsonb->>'shop')::BIGINT
FROM entries
WHERE kind = 'fee_payment' AND facts IS NOT NULL AND facts::jsonb->>'fact' = 'fee_receipt'
ORDER BY id;
