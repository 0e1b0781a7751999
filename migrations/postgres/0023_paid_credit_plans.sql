-- The paid-credit trigger on postings (0022) joined a statement's new rows to `accounts` with
-- the account's kind and name among the join's conditions, so the planner could take the
-- (owner_kind, owner_id, name) index and scan every household's wallet accounts once per new
-- posting: with the transition table estimated at one row and the tables not yet analysed (a
-- fresh ledger's first top-ups), it did, and each statement's cost grew with the number of
-- households (the till bench's opening credit for 5,000 households took 20 s instead of 1.5 s,
-- and the load that followed ran at half speed on plans made then).
--
-- Now each new posting finds its account by primary key only (the MATERIALIZED step has no
-- other condition to plan with), the kind and name are tested on the rows found, and the
-- entries, cooperatives and vouchers are looked up by key. Both functions plan with nested
-- loops over indexes, the right plan at every size, whatever the statistics say.
CREATE OR REPLACE FUNCTION hongxin_paid_credit_posted() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    INSERT INTO paid_credit_months_pending (cooperative_id, month, wallet_paid, voucher_paid)
    WITH posted AS MATERIALIZED (
        SELECT n.entry_id, n.amount, a.owner_kind, a.owner_id, a.name
        FROM new_rows n JOIN accounts a ON a.id = n.account_id
    ), paid AS MATERIALIZED (
        SELECT * FROM posted
        WHERE (owner_kind = 'household' AND name LIKE 'wallet:%:paid')
           OR (owner_kind = 'voucher' AND name = 'paid')
    )
    SELECT c.id, substr(e.business_date, 1, 7), -SUM(p.amount), 0
    FROM paid p JOIN entries e ON e.id = p.entry_id
    JOIN cooperatives c ON c.code = substr(p.name, 8, length(p.name) - 12)
    WHERE p.owner_kind = 'household'
    GROUP BY 1, 2
    UNION ALL
    SELECT v.cooperative_id, substr(e.business_date, 1, 7), 0, -SUM(p.amount)
    FROM paid p JOIN entries e ON e.id = p.entry_id JOIN vouchers v ON v.id = p.owner_id
    WHERE p.owner_kind = 'voucher'
    GROUP BY 1, 2;
    RETURN NULL;
END $$;

ALTER FUNCTION hongxin_paid_credit_voucher_written() SET enable_seqscan = off;
ALTER FUNCTION hongxin_paid_credit_voucher_written() SET enable_hashjoin = off;
ALTER FUNCTION hongxin_paid_credit_voucher_written() SET enable_mergejoin = off;
