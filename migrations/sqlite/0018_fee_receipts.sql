-- Numbered fee receipts (收据): one gapless sequence per company, over the payments its office
-- records and those a cooperative's till collects on its behalf (cooperative and shop set).
-- The number is given inside the single writer, in the payment's transaction, and the payment
-- entry's hashed facts name it (src/fees/mod.rs; `verify` holds this table to them).
CREATE TABLE fee_receipts (
    company_id      INTEGER NOT NULL REFERENCES companies(id),
    number          INTEGER NOT NULL CHECK (number > 0),
    entry_id        INTEGER NOT NULL UNIQUE REFERENCES entries(id),
    household_id    INTEGER NOT NULL REFERENCES households(id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    method          TEXT NOT NULL,
    cooperative_id  INTEGER REFERENCES cooperatives(id),
    shop_id         INTEGER REFERENCES shops(id),
    PRIMARY KEY (company_id, number)
) STRICT;

-- Receipts the chain already names (a database taken back to before this table and upgraded
-- again) are rebuilt from the entries' hashed facts; a ledger from before receipts has none.
INSERT INTO fee_receipts (company_id, number, entry_id, household_id, amount, method,
                          cooperative_id, shop_id)
SELECT json_extract(facts, '$.company'), json_extract(facts, '$.number'), id,
       json_extract(facts, '$.household'), json_extract(facts, '$.amount'),
       json_extract(facts, '$.method'), json_extract(facts, '$.cooperative'),
       json_extract(facts, '$.shop')
FROM entries
WHERE kind = 'fee_payment' AND facts IS NOT NULL AND json_extract(facts, '$.fact') = 'fee_receipt'
ORDER BY id;
