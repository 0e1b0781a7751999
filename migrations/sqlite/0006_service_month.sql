-- The service month of an entry: the month it is for. A fee bill belongs to the month it bills,
-- a month close's allocation to the month closed, and every other entry (a fee payment, a
-- settlement) to the month of its business date. The company statement, the office's month
-- series, the resident's fee view and the month close's fee balances all read this one rule.
CREATE INDEX fee_bills_by_entry ON fee_bills(entry_id, month);
CREATE INDEX month_closes_by_entry ON month_closes(entry_id) WHERE entry_id IS NOT NULL;
CREATE VIEW entry_months AS
SELECT e.id AS entry_id,
       e.kind,
       e.business_date,
       COALESCE(
           CASE e.kind
               WHEN 'fee_bill' THEN (SELECT MIN(b.month) FROM fee_bills b WHERE b.entry_id = e.id)
               WHEN 'profit_allocation' THEN (SELECT m.month FROM month_closes m WHERE m.entry_id = e.id)
           END,
           substr(e.business_date, 1, 7)
       ) AS service_month
FROM entries e;

-- What each refund gave back to each tender of its sale, so that a month close can weigh a
-- month's credit spending as of the month's end: a refund dated after the month does not reduce
-- the month's weights. (sale_tenders.refunded keeps the running total.) Refunds made before this
-- table existed are not listed here and count as of whenever a close reads them.
CREATE TABLE sale_refund_tenders (
    entry_id  INTEGER NOT NULL REFERENCES entries(id),
    sale_id   INTEGER NOT NULL REFERENCES sales(id),
    idx       INTEGER NOT NULL,
    amount    INTEGER NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX sale_refund_tenders_by_tender ON sale_refund_tenders(sale_id, idx);
