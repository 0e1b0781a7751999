-- Takes a database back to before 0024_fee_receipts_by_household.sql.
DROP INDEX fee_receipts_by_household;
