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
