-- The paid part of the prepaid liability per cooperative and month (what each column counts:
-- see the SQLite migration of the same number). As programme_months (0015): per-statement
-- triggers write each statement's figures into a pending table with no key and no lock, and a
-- deferred trigger folds them into paid_credit_months at commit, in key order.
CREATE TABLE paid_credit_months (
    cooperative_id  BIGINT NOT NULL REFERENCES cooperatives(id),
    month           TEXT NOT NULL,
    wallet_paid     BIGINT NOT NULL DEFAULT 0,
    voucher_paid    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cooperative_id, month)
);
CREATE TABLE paid_credit_months_pending (LIKE paid_credit_months INCLUDING DEFAULTS);

CREATE FUNCTION hongxin_paid_credit_fold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (DELETE FROM paid_credit_months_pending RETURNING *)
    INSERT INTO paid_credit_months AS m
    SELECT cooperative_id, month, SUM(wallet_paid), SUM(voucher_paid)
    FROM moved GROUP BY cooperative_id, month ORDER BY cooperative_id, month
    ON CONFLICT (cooperative_id, month) DO UPDATE SET
        wallet_paid = m.wallet_paid + EXCLUDED.wallet_paid,
        voucher_paid = m.voucher_paid + EXCLUDED.voucher_paid;
    RETURN NULL;
END $$;
-- Fires once per pending row at commit; the first firing folds them all, the rest find none.
CREATE CONSTRAINT TRIGGER paid_credit_months_fold AFTER INSERT ON paid_credit_months_pending
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hongxin_paid_credit_fold();

-- Postings to paid-credit accounts, whatever the entry's kind. A posting to a voucher whose row
-- is not written yet is counted by the trigger on vouchers below instead.
CREATE FUNCTION hongxin_paid_credit_posted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO paid_credit_months_pending (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT c.id, substr(e.business_date, 1, 7), -SUM(n.amount), 0
    FROM new_rows n JOIN accounts a ON a.id = n.account_id JOIN entries e ON e.id = n.entry_id
    JOIN cooperatives c ON c.code = substr(a.name, 8, length(a.name) - 12)
    WHERE a.owner_kind = 'household' AND a.name LIKE 'wallet:%:paid'
    GROUP BY 1, 2;
    INSERT INTO paid_credit_months_pending (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT v.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(n.amount)
    FROM new_rows n JOIN accounts a ON a.id = n.account_id JOIN entries e ON e.id = n.entry_id
    JOIN vouchers v ON v.id = a.owner_id
    WHERE a.owner_kind = 'voucher' AND a.name = 'paid'
    GROUP BY 1, 2;
    RETURN NULL;
END $$;
CREATE TRIGGER paid_credit_posted AFTER INSERT ON postings
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_paid_credit_posted();

CREATE FUNCTION hongxin_paid_credit_voucher_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO paid_credit_months_pending (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT n.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(p.amount)
    FROM new_rows n JOIN accounts a ON a.owner_kind = 'voucher' AND a.owner_id = n.id AND a.name = 'paid'
    JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
    GROUP BY 1, 2;
    RETURN NULL;
END $$;
CREATE TRIGGER paid_credit_voucher_written AFTER INSERT ON vouchers
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_paid_credit_voucher_written();

-- What was written before this table existed.
INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
SELECT c.id, substr(e.business_date, 1, 7), -SUM(p.amount), 0
FROM accounts a JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
JOIN cooperatives c ON c.code = substr(a.name, 8, length(a.name) - 12)
WHERE a.owner_kind = 'household' AND a.name LIKE 'wallet:%:paid'
GROUP BY c.id, substr(e.business_date, 1, 7);
INSERT INTO paid_credit_months AS m (cooperative_id, month, wallet_paid, voucher_paid)
SELECT v.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(p.amount)
FROM accounts a JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
JOIN vouchers v ON v.id = a.owner_id
WHERE a.owner_kind = 'voucher' AND a.name = 'paid'
GROUP BY v.cooperative_id, substr(e.business_date, 1, 7)
ON CONFLICT (cooperative_id, month) DO UPDATE SET voucher_paid = EXCLUDED.voucher_paid;
