-- The alliance's view (src/reports/alliance.rs): where households live inside their compound,
-- when each company took its compound over, a read-only `alliance` role, and the per-month
-- figures the alliance's reports read, kept up to date by triggers in the same transaction as
-- every write, so that a report reads a few thousand maintained rows instead of the journal.

-- 楼栋 (building) and 网格 (grid, the neighbourhood committee's unit of about 150 households).
ALTER TABLE households ADD COLUMN building TEXT;
ALTER TABLE households ADD COLUMN grid TEXT;
CREATE INDEX households_by_place ON households(compound_id, grid, building);

-- The day the compound's company took it over (接管), set by the admin.
ALTER TABLE compounds ADD COLUMN taken_over_on TEXT;

-- SQLite cannot change a CHECK in place: the tokens table is rebuilt with the new role. Its
-- own parent_id refers to it; the check is deferred to the end of the migration.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE tokens_new (
    id              INTEGER PRIMARY KEY,
    hash            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'cashier', 'coop_accountant', 'company', 'resident', 'alliance')),
    cooperative_id  INTEGER REFERENCES cooperatives(id),
    shop_id         INTEGER REFERENCES shops(id),
    company_id      INTEGER REFERENCES companies(id),
    household_id    INTEGER REFERENCES households(id),
    label           TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    parent_id       INTEGER REFERENCES tokens_new(id)
) STRICT;
INSERT INTO tokens_new (id, hash, role, cooperative_id, shop_id, company_id, household_id, label,
                        created_at, expires_at, revoked_at, parent_id)
SELECT id, hash, role, cooperative_id, shop_id, company_id, household_id, label,
       created_at, expires_at, revoked_at, parent_id FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_by_parent ON tokens(parent_id) WHERE parent_id IS NOT NULL;

-- Per compound, grid, building (empty text when the household has none) and month:
--   bills, billed           fee bills of the month (by the month they bill) and their total;
--   collected_in_month      of those bills, what was settled by money of that month or before
--                           (a payment dated in it, the close of that month, money paid ahead);
--   collected_late          …and what later months' payments and closes settled;
--   paid                    residents' fee payments dated in the month;
--   allocated               the cooperative's allocations of the month closed (合作社盈利用物业);
--   topups, topup_households, credit_sold, bonus_granted
--                           top-ups dated in the month, the households that made their first of
--                           the month, paid and bonus credit;
--   credit_spent, spend_households
--                           wallet credit households spent in sales dated in the month (before
--                           refunds; bearer vouchers name no household), and the households
--                           that spent for the first time in the month.
CREATE TABLE programme_months (
    compound_id         INTEGER NOT NULL REFERENCES compounds(id),
    grid                TEXT NOT NULL,
    building            TEXT NOT NULL,
    month               TEXT NOT NULL,
    bills               INTEGER NOT NULL DEFAULT 0,
    billed              INTEGER NOT NULL DEFAULT 0,
    collected_in_month  INTEGER NOT NULL DEFAULT 0,
    collected_late      INTEGER NOT NULL DEFAULT 0,
    paid                INTEGER NOT NULL DEFAULT 0,
    allocated           INTEGER NOT NULL DEFAULT 0,
    topups              INTEGER NOT NULL DEFAULT 0,
    topup_households    INTEGER NOT NULL DEFAULT 0,
    credit_sold         INTEGER NOT NULL DEFAULT 0,
    bonus_granted       INTEGER NOT NULL DEFAULT 0,
    credit_spent        INTEGER NOT NULL DEFAULT 0,
    spend_households    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (compound_id, grid, building, month)
) STRICT, WITHOUT ROWID;

-- Per cooperative and month: sales paid with credit (wallet, voucher) and with money (cash,
-- wechat, alipay), each net of refunds, a sale by its date and a refund by the refund's date,
-- as the month close counts the sales account.
CREATE TABLE coop_months (
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    month           TEXT NOT NULL,
    credit_sales    INTEGER NOT NULL DEFAULT 0,
    cash_sales      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cooperative_id, month)
) STRICT, WITHOUT ROWID;

-- The month the latest entry is for: the month closed for an allocation, otherwise the month of
-- its business date. Inside the single writer's transaction the latest entry is the one being
-- written, whose settlement of bills the update below sees.
CREATE TRIGGER programme_bill_made AFTER INSERT ON fee_bills
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, bills, billed, collected_in_month)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, 1, NEW.amount, NEW.settled
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        bills = bills + 1, billed = billed + excluded.billed,
        collected_in_month = collected_in_month + excluded.collected_in_month;
END;

CREATE TRIGGER programme_bill_settled AFTER UPDATE OF settled ON fee_bills
WHEN NEW.settled <> OLD.settled
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, collected_in_month, collected_late)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month,
           CASE WHEN s.month <= NEW.month THEN NEW.settled - OLD.settled ELSE 0 END,
           CASE WHEN s.month > NEW.month THEN NEW.settled - OLD.settled ELSE 0 END
    FROM households h,
         (SELECT CASE WHEN e.kind = 'profit_allocation'
                      THEN COALESCE(json_extract(e.facts, '$.month'), substr(e.business_date, 1, 7))
                      ELSE substr(e.business_date, 1, 7) END AS month
          FROM entries e ORDER BY e.id DESC LIMIT 1) s
    WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        collected_in_month = collected_in_month + excluded.collected_in_month,
        collected_late = collected_late + excluded.collected_late;
END;

CREATE TRIGGER programme_fee_paid AFTER INSERT ON fee_credits
WHEN NEW.kind = 'payment'
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, paid)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), substr(e.business_date, 1, 7), NEW.amount
    FROM households h, entries e WHERE h.id = NEW.household_id AND e.id = NEW.entry_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET paid = paid + excluded.paid;
END;

-- A close's shares: [household, company, weight, cap, amount] per household.
CREATE TRIGGER programme_month_closed AFTER INSERT ON month_closes
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, allocated)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, SUM(json_extract(j.value, '$[4]'))
    FROM json_each(NEW.shares) j CROSS JOIN households h ON h.id = json_extract(j.value, '$[0]')
    WHERE json_extract(j.value, '$[4]') > 0
    GROUP BY h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, '')
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET allocated = allocated + excluded.allocated;
END;

CREATE TRIGGER programme_topped_up AFTER INSERT ON topups
BEGIN
    INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), NEW.month, 1,
           NOT EXISTS (SELECT 1 FROM topups t WHERE t.household_id = NEW.household_id
                       AND t.month = NEW.month AND t.entry_id <> NEW.entry_id),
           NEW.paid, NEW.bonus
    FROM households h WHERE h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        topups = topups + 1, topup_households = topup_households + excluded.topup_households,
        credit_sold = credit_sold + excluded.credit_sold, bonus_granted = bonus_granted + excluded.bonus_granted;
END;

CREATE TRIGGER programme_tendered AFTER INSERT ON sale_tenders
BEGIN
    INSERT INTO coop_months (cooperative_id, month, credit_sales, cash_sales)
    SELECT s.cooperative_id, substr(s.business_date, 1, 7),
           CASE WHEN NEW.type IN ('wallet', 'voucher') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.type IN ('wallet', 'voucher') THEN 0 ELSE NEW.amount END
    FROM sales s WHERE s.id = NEW.sale_id
    ON CONFLICT (cooperative_id, month) DO UPDATE SET
        credit_sales = credit_sales + excluded.credit_sales, cash_sales = cash_sales + excluded.cash_sales;
    INSERT INTO programme_months (compound_id, grid, building, month, credit_spent, spend_households)
    SELECT h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, ''), substr(s.business_date, 1, 7), NEW.amount,
           NOT EXISTS (SELECT 1 FROM sales o JOIN sale_tenders t ON t.sale_id = o.id
                       WHERE o.household_id = NEW.household_id
                         AND o.business_date BETWEEN substr(s.business_date, 1, 7) || '-01' AND substr(s.business_date, 1, 7) || '-31'
                         AND t.household_id = NEW.household_id AND t.type = 'wallet'
                         AND NOT (t.sale_id = NEW.sale_id AND t.idx = NEW.idx))
    FROM sales s, households h
    WHERE NEW.type = 'wallet' AND NEW.household_id IS NOT NULL
      AND s.id = NEW.sale_id AND h.id = NEW.household_id
    ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
        credit_spent = credit_spent + excluded.credit_spent,
        spend_households = spend_households + excluded.spend_households;
END;

CREATE TRIGGER programme_refunded AFTER INSERT ON sale_refund_tenders
BEGIN
    INSERT INTO coop_months (cooperative_id, month, credit_sales, cash_sales)
    SELECT s.cooperative_id, substr(e.business_date, 1, 7),
           CASE WHEN t.type IN ('wallet', 'voucher') THEN -NEW.amount ELSE 0 END,
           CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE -NEW.amount END
    FROM sales s, sale_tenders t, entries e
    WHERE s.id = NEW.sale_id AND t.sale_id = NEW.sale_id AND t.idx = NEW.idx AND e.id = NEW.entry_id
    ON CONFLICT (cooperative_id, month) DO UPDATE SET
        credit_sales = credit_sales + excluded.credit_sales, cash_sales = cash_sales + excluded.cash_sales;
END;

-- What was written before these tables existed. The split of settled bills into in-month and
-- late was not recorded then: what older bills had settled counts as collected in their month.
INSERT INTO programme_months (compound_id, grid, building, month, bills, billed, collected_in_month)
SELECT h.compound_id, '', '', b.month, COUNT(*), SUM(b.amount), SUM(b.settled)
FROM fee_bills b JOIN households h ON h.id = b.household_id
GROUP BY h.compound_id, b.month
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
    bills = excluded.bills, billed = excluded.billed, collected_in_month = excluded.collected_in_month;

INSERT INTO programme_months (compound_id, grid, building, month, paid)
SELECT h.compound_id, '', '', substr(e.business_date, 1, 7), SUM(f.amount)
FROM fee_credits f JOIN households h ON h.id = f.household_id JOIN entries e ON e.id = f.entry_id
WHERE f.kind = 'payment'
GROUP BY h.compound_id, substr(e.business_date, 1, 7)
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET paid = excluded.paid;

INSERT INTO programme_months (compound_id, grid, building, month, allocated)
SELECT h.compound_id, '', '', m.month, SUM(json_extract(j.value, '$[4]'))
FROM month_closes m, json_each(m.shares) j CROSS JOIN households h ON h.id = json_extract(j.value, '$[0]')
WHERE json_extract(j.value, '$[4]') > 0
GROUP BY h.compound_id, m.month
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET allocated = excluded.allocated;

INSERT INTO programme_months (compound_id, grid, building, month, topups, topup_households, credit_sold, bonus_granted)
SELECT h.compound_id, '', '', t.month, COUNT(*), COUNT(DISTINCT t.household_id), SUM(t.paid), SUM(t.bonus)
FROM topups t JOIN households h ON h.id = t.household_id
GROUP BY h.compound_id, t.month
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
    topups = excluded.topups, topup_households = excluded.topup_households,
    credit_sold = excluded.credit_sold, bonus_granted = excluded.bonus_granted;

INSERT INTO programme_months (compound_id, grid, building, month, credit_spent, spend_households)
SELECT h.compound_id, '', '', substr(s.business_date, 1, 7), SUM(t.amount), COUNT(DISTINCT t.household_id)
FROM sale_tenders t JOIN sales s ON s.id = t.sale_id JOIN households h ON h.id = t.household_id
WHERE t.type = 'wallet'
GROUP BY h.compound_id, substr(s.business_date, 1, 7)
ON CONFLICT (compound_id, grid, building, month) DO UPDATE SET
    credit_spent = excluded.credit_spent, spend_households = excluded.spend_households;

INSERT INTO coop_months (cooperative_id, month, credit_sales, cash_sales)
SELECT s.cooperative_id, substr(s.business_date, 1, 7),
       SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN t.amount ELSE 0 END),
       SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE t.amount END)
FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
GROUP BY s.cooperative_id, substr(s.business_date, 1, 7);

INSERT INTO coop_months (cooperative_id, month, credit_sales, cash_sales)
SELECT s.cooperative_id, substr(e.business_date, 1, 7),
       -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN r.amount ELSE 0 END),
       -SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE r.amount END)
FROM sale_refund_tenders r JOIN sales s ON s.id = r.sale_id
JOIN sale_tenders t ON t.sale_id = r.sale_id AND t.idx = r.idx JOIN entries e ON e.id = r.entry_id
GROUP BY s.cooperative_id, substr(e.business_date, 1, 7)
ON CONFLICT (cooperative_id, month) DO UPDATE SET
    credit_sales = credit_sales + excluded.credit_sales, cash_sales = cash_sales + excluded.cash_sales;
