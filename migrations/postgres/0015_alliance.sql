-- The alliance's view (src/reports/alliance.rs): where households live inside their compound,
-- when each company took its compound over, a read-only `alliance` role, and the per-month
-- figures the alliance's reports read, kept up to date by triggers in the same transaction as
-- every write. The columns of programme_months and coop_months are described in the SQLite
-- migration of the same number; the triggers here are per statement, one aggregated row per
-- batch statement rather than one per written row, folded in at commit (see below).

ALTER TABLE households ADD COLUMN building TEXT;
ALTER TABLE households ADD COLUMN grid TEXT;
CREATE INDEX households_by_place ON households(compound_id, grid, building);

ALTER TABLE compounds ADD COLUMN taken_over_on TEXT;

ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
    CHECK (role IN ('admin', 'cashier', 'coop_accountant', 'company', 'resident', 'alliance'));

-- The entries of the writing transaction have no place in the chain yet (seq is given at
-- commit): the latest of them is the one whose settlement of bills a trigger sees.
CREATE INDEX entries_unplaced ON entries(id) WHERE seq IS NULL;

CREATE TABLE programme_months (
    compound_id         BIGINT NOT NULL REFERENCES compounds(id),
    grid                TEXT NOT NULL,
    building            TEXT NOT NULL,
    month               TEXT NOT NULL,
    bills               BIGINT NOT NULL DEFAULT 0,
    billed              BIGINT NOT NULL DEFAULT 0,
    collected_in_month  BIGINT NOT NULL DEFAULT 0,
    collected_late      BIGINT NOT NULL DEFAULT 0,
    paid                BIGINT NOT NULL DEFAULT 0,
    allocated           BIGINT NOT NULL DEFAULT 0,
    topups              BIGINT NOT NULL DEFAULT 0,
    topup_households    BIGINT NOT NULL DEFAULT 0,
    credit_sold         BIGINT NOT NULL DEFAULT 0,
    bonus_granted       BIGINT NOT NULL DEFAULT 0,
    credit_spent        BIGINT NOT NULL DEFAULT 0,
    spend_households    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (compound_id, grid, building, month)
);

CREATE TABLE coop_months (
    cooperative_id  BIGINT NOT NULL REFERENCES cooperatives(id),
    month           TEXT NOT NULL,
    credit_sales    BIGINT NOT NULL DEFAULT 0,
    cash_sales      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cooperative_id, month)
);

-- The triggers below do not update programme_months and coop_months themselves: two writers
-- (several hongxin processes share one database) would then lock the same few rows in
-- different orders and could deadlock. Each statement's figures go into a pending table, with
-- no key and no lock; a deferred trigger folds them into the maintained tables when the
-- transaction commits, in key order, after the batch has taken the chain head's lock
-- (src/store/postgres.rs), so folds never run side by side.
CREATE TABLE programme_months_pending (LIKE programme_months INCLUDING DEFAULTS);
CREATE TABLE coop_months_pending (LIKE coop_months INCLUDING DEFAULTS);

CREATE FUNCTION hongxin_programme_fold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (DELETE FROM programme_months_pending RETURNING *)
    INSERT INTO programme_months AS p
    SELECT compound_id, grid, building, month, SUM(bills), SUM(billed), SUM(collected_in_month),
           SUM(collected_late), SUM(paid), SUM(allocated), SUM(topups), SUM(topup_households),
           SUM(credit_sold), SUM(bonus_granted), SUM(credit_spent), SUM(spend_households)
    FROM moved GROUP BY compound_id, grid, building, month
    ORDER BY compound_id, grid, building, month
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        bills = p.bills + EXCLUDED.bills, billed = p.billed + EXCLUDED.billed,
        collected_in_month = p.collected_in_month + EXCLUDED.collected_in_month,
        collected_late = p.collected_late + EXCLUDED.collected_late,
        paid = p.paid + EXCLUDED.paid, allocated = p.allocated + EXCLUDED.allocated,
        topups = p.topups + EXCLUDED.topups,
        topup_households = p.topup_households + EXCLUDED.topup_households,
        credit_sold = p.credit_sold + EXCLUDED.credit_sold,
        bonus_granted = p.bonus_granted + EXCLUDED.bonus_granted,
        credit_spent = p.credit_spent + EXCLUDED.credit_spent,
        spend_households = p.spend_households + EXCLUDED.spend_households;
    WITH moved AS (DELETE FROM coop_months_pending RETURNING *)
    INSERT INTO coop_months AS c
    SELECT cooperative_id, month, SUM(credit_sales), SUM(cash_sales)
    FROM moved GROUP BY cooperative_id, month ORDER BY cooperative_id, month
    ON CONFLICT (cooperative_id, month) DO UPDATE SET
        credit_sales = c.credit_sales + EXCLUDED.credit_sales,
        cash_sales = c.cash_sales + EXCLUDED.cash_sales;
    RETURN NULL;
END $$;
-- Fires once per pending row at commit; the first firing folds them all, the rest find none.
CREATE CONSTRAINT TRIGGER programme_months_fold AFTER INSERT ON programme_months_pending
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hongxin_programme_fold();
CREATE CONSTRAINT TRIGGER coop_months_fold AFTER INSERT ON coop_months_pending
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hongxin_programme_fold();

CREATE FUNCTION hongxin_programme_bills_made() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, bills, billed, collected_in_month)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, COUNT(*), SUM(n.amount), SUM(n.settled)
    FROM new_rows n JOIN households h ON h.id = n.household_id
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_bills_made AFTER INSERT ON fee_bills
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_bills_made();

CREATE FUNCTION hongxin_programme_bills_settled() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    paid_for TEXT;
BEGIN
    SELECT CASE WHEN e.kind = 'profit_allocation'
                THEN COALESCE(e.facts::json ->> 'month', substr(e.business_date, 1, 7))
                ELSE substr(e.business_date, 1, 7) END
    INTO paid_for
    FROM entries e WHERE e.seq IS NULL ORDER BY e.id DESC LIMIT 1;
    IF paid_for IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO programme_months_pending (compound_id, grid, building, month, collected_in_month, collected_late)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month,
           SUM(CASE WHEN paid_for <= n.month THEN n.settled - o.settled ELSE 0 END),
           SUM(CASE WHEN paid_for > n.month THEN n.settled - o.settled ELSE 0 END)
    FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN households h ON h.id = n.household_id
    WHERE n.settled <> o.settled
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_bills_settled AFTER UPDATE ON fee_bills
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_bills_settled();

CREATE FUNCTION hongxin_programme_fees_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, paid)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), substr(e.business_date, 1, 7), SUM(n.amount)
    FROM new_rows n JOIN households h ON h.id = n.household_id JOIN entries e ON e.id = n.entry_id
    WHERE n.kind = 'payment'
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_fees_paid AFTER INSERT ON fee_credits
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_fees_paid();

CREATE FUNCTION hongxin_programme_months_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, allocated)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, SUM((j.value ->> 4)::BIGINT)
    FROM new_rows n CROSS JOIN LATERAL json_array_elements(n.shares::json) j
    JOIN households h ON h.id = (j.value ->> 0)::BIGINT
    WHERE (j.value ->> 4)::BIGINT > 0
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_months_closed AFTER INSERT ON month_closes
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_months_closed();

CREATE FUNCTION hongxin_programme_topped_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO programme_months_pending (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), n.month, COUNT(*),
           COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM topups t WHERE t.household_id = n.household_id AND t.month = n.month
                 AND t.entry_id NOT IN (SELECT entry_id FROM new_rows))),
           SUM(n.paid), SUM(n.bonus)
    FROM new_rows n JOIN households h ON h.id = n.household_id
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_topped_up AFTER INSERT ON topups
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_topped_up();

CREATE FUNCTION hongxin_programme_tendered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coop_months_pending (cooperative_id, month, credit_sales, cash_sales)
    SELECT s.cooperative_id, substr(s.business_date, 1, 7),
           SUM(CASE WHEN n.type IN ('wallet', 'voucher') THEN n.amount ELSE 0 END),
           SUM(CASE WHEN n.type IN ('wallet', 'voucher') THEN 0 ELSE n.amount END)
    FROM new_rows n JOIN sales s ON s.id = n.sale_id
    GROUP BY 1, 2;
    INSERT INTO programme_months_pending (compound_id, grid, building, month, credit_spent, spend_households)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), substr(s.business_date, 1, 7), SUM(n.amount),
           COUNT(DISTINCT n.household_id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM sales o JOIN sale_tenders t ON t.sale_id = o.id
               WHERE o.household_id = n.household_id
                 AND o.business_date BETWEEN substr(s.business_date, 1, 7) || '-01' AND substr(s.business_date, 1, 7) || '-31'
                 AND t.household_id = n.household_id AND t.type = 'wallet'
                 AND t.sale_id NOT IN (SELECT sale_id FROM new_rows)))
    FROM new_rows n JOIN sales s ON s.id = n.sale_id JOIN households h ON h.id = n.household_id
    WHERE n.type = 'wallet'
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_tendered AFTER INSERT ON sale_tenders
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_tendered();

CREATE FUNCTION hongxin_programme_refunded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coop_months_pending (cooperative_id, month, credit_sales, cash_sales)
    SELECT s.cooperative_id, substr(e.business_date, 1, 7),
           -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN n.amount ELSE 0 END),
           -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE n.amount END)
    FROM new_rows n JOIN sales s ON s.id = n.sale_id
    JOIN sale_tenders t ON t.sale_id = n.sale_id AND t.idx = n.idx JOIN entries e ON e.id = n.entry_id
    GROUP BY 1, 2;
    RETURN NULL;
END $$;
CREATE TRIGGER programme_refunded AFTER INSERT ON sale_refund_tenders
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hongxin_programme_refunded();

-- What was written before these tables existed (see the SQLite migration).
INSERT INTO programme_months (compound_id, grid, building, month, bills, billed, collected_in_month)
SELECT h.compound_id, '', '', b.month, COUNT(*), SUM(b.amount), SUM(b.settled)
FROM fee_bills b JOIN households h ON h.id = b.household_id
GROUP BY h.compound_id, b.month;

INSERT INTO programme_months AS p (compound_id, grid, building, month, paid)
SELECT h.compound_id, '', '', substr(e.business_date, 1, 7), SUM(f.amount)
FROM fee_credits f JOIN households h ON h.id = f.household_id JOIN entries e ON e.id = f.entry_id
WHERE f.kind = 'payment'
GROUP BY h.compound_id, substr(e.business_date, 1, 7)
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET paid = EXCLUDED.paid;

INSERT INTO programme_months AS p (compound_id, grid, building, month, allocated)
SELECT h.compound_id, '', '', m.month, SUM((j.value ->> 4)::BIGINT)
FROM month_closes m CROSS JOIN LATERAL json_array_elements(m.shares::json) j
JOIN households h ON h.id = (j.value ->> 0)::BIGINT
WHERE (j.value ->> 4)::BIGINT > 0
GROUP BY h.compound_id, m.month
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET allocated = EXCLUDED.allocated;

INSERT INTO programme_months AS p (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
SELECT h.compound_id, '', '', t.month, COUNT(*), COUNT(DISTINCT t.household_id), SUM(t.paid), SUM(t.bonus)
FROM topups t JOIN households h ON h.id = t.household_id
GROUP BY h.compound_id, t.month
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
    topups = EXCLUDED.topups, topup_households = EXCLUDED.topup_households,
    credit_sold = EXCLUDED.credit_sold, bonus_granted = EXCLUDED.bonus_granted;

INSERT INTO programme_months AS p (compound_id, grid, building, month, credit_spent, spend_households)
SELECT h.compound_id, '', '', substr(s.business_date, 1, 7), SUM(t.amount), COUNT(DISTINCT t.household_id)
FROM sale_tenders t JOIN sales s ON s.id = t.sale_id JOIN households h ON h.id = t.household_id
WHERE t.type = 'wallet'
GROUP BY h.compound_id, substr(s.business_date, 1, 7)
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
    credit_spent = EXCLUDED.credit_spent, spend_households = EXCLUDED.spend_households;

INSERT INTO coop_months (cooperative_id, month, credit_sales, cash_sales)
SELECT s.cooperative_id, substr(s.business_date, 1, 7),
       SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN t.amount ELSE 0 END),
       SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE t.amount END)
FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
GROUP BY s.cooperative_id, substr(s.business_date, 1, 7);

INSERT INTO coop_months AS c (cooperative_id, month, credit_sales, cash_sales)
SELECT s.cooperative_id, substr(e.business_date, 1, 7),
       -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN r.amount ELSE 0 END),
       -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE r.amount END)
FROM sale_refund_tenders r JOIN sales s ON s.id = r.sale_id
JOIN sale_tenders t ON t.sale_id = r.sale_id AND t.idx = r.idx JOIN entries e ON e.id = r.entry_id
GROUP BY s.cooperative_id, substr(e.business_date, 1, 7)
ON CONFLICT (cooperative_id, month) DO UPDATE SET
    credit_sales = c.credit_sales + EXCLUDED.credit_sales, cash_sales = c.cash_sales + EXCLUDED.cash_sales;
