-- The paid part of the prepaid liability (预付卡余额, the residents' own money) per cooperative
-- and month, kept up to date by triggers in the same transaction as every write, so that the
-- custody deposit (存管资金: a policy ratio × the paid balance at the end of the previous
-- quarter, src/reports/prepaid.rs) and the alliance's report sum a few rows instead of
-- recomputing balances from the journal.
--
--   wallet_paid    net paid credit added to households' wallets of the cooperative by entries
--                  dated in the month (credits less debits of their `wallet:<coop>:paid`
--                  accounts): top-ups less spending, plus refunds to credit, less cash-outs…
--   voucher_paid   …and the same for the `paid` accounts of the cooperative's vouchers
--                  (issue, spending, refunds, void, expiry).
--
-- The paid balance at the end of a month is the sum of both over that month and every earlier
-- one. What moves the figures is a posting to a paid-credit account, whatever the entry's kind:
-- a new kind of entry that posts to these accounts is counted without a change here.
CREATE TABLE paid_credit_months (
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    month           TEXT NOT NULL,
    wallet_paid     INTEGER NOT NULL DEFAULT 0,
    voucher_paid    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cooperative_id, month)
) STRICT, WITHOUT ROWID;

-- A posting to a paid-credit account. Liabilities: a credit (negative amount) adds to them. A
-- voucher's cooperative is on its row; the till's batch writes a new voucher's row after the
-- postings that issue it, so a posting to a voucher not yet written is left to the trigger on
-- vouchers below (and every later posting to it counted here): each posting counts once,
-- whichever is written first.
CREATE TRIGGER paid_credit_posted AFTER INSERT ON postings
BEGIN
    INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT c.id, substr(e.business_date, 1, 7), -NEW.amount, 0
    FROM accounts a, entries e, cooperatives c
    WHERE a.id = NEW.account_id AND a.owner_kind = 'household' AND a.name GLOB 'wallet:*:paid'
      AND e.id = NEW.entry_id AND c.code = substr(a.name, 8, length(a.name) - 12)
    ON CONFLICT (cooperative_id, month) DO UPDATE SET wallet_paid = wallet_paid + excluded.wallet_paid;
    INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT v.cooperative_id, substr(e.business_date, 1, 7), 0, -NEW.amount
    FROM accounts a, entries e, vouchers v
    WHERE a.id = NEW.account_id AND a.owner_kind = 'voucher' AND a.name = 'paid'
      AND e.id = NEW.entry_id AND v.id = a.owner_id
    ON CONFLICT (cooperative_id, month) DO UPDATE SET voucher_paid = voucher_paid + excluded.voucher_paid;
END;

CREATE TRIGGER paid_credit_voucher_written AFTER INSERT ON vouchers
BEGIN
    INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
    SELECT NEW.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(p.amount)
    FROM accounts a JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
    WHERE a.owner_kind = 'voucher' AND a.owner_id = NEW.id AND a.name = 'paid'
    GROUP BY substr(e.business_date, 1, 7)
    ON CONFLICT (cooperative_id, month) DO UPDATE SET voucher_paid = voucher_paid + excluded.voucher_paid;
END;

-- What was written before this table existed.
INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
SELECT c.id, substr(e.business_date, 1, 7), -SUM(p.amount), 0
FROM accounts a JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
JOIN cooperatives c ON c.code = substr(a.name, 8, length(a.name) - 12)
WHERE a.owner_kind = 'household' AND a.name GLOB 'wallet:*:paid'
GROUP BY c.id, substr(e.business_date, 1, 7);

INSERT INTO paid_credit_months (cooperative_id, month, wallet_paid, voucher_paid)
SELECT v.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(p.amount)
FROM accounts a JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
JOIN vouchers v ON v.id = a.owner_id
WHERE a.owner_kind = 'voucher' AND a.name = 'paid'
GROUP BY v.cooperative_id, substr(e.business_date, 1, 7)
ON CONFLICT (cooperative_id, month) DO UPDATE SET voucher_paid = excluded.voucher_paid;
