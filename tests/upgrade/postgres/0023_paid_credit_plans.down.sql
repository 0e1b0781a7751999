-- Takes a database back to before migrations/postgres/0023_paid_credit_plans.sql: 0022's
-- functions as that migration wrote them.
CREATE OR REPLACE FUNCTION hongxin_paid_credit_posted() RETURNS trigger LANGUAGE plpgsql AS $$
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
ALTER FUNCTION hongxin_paid_credit_voucher_written() RESET ALL;
