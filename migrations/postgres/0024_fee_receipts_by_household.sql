-- The fee receipts of one household (the alliance's figures for a compound that moved read the
-- payments of its households only, not every receipt).
CREATE INDEX fee_receipts_by_household ON fee_receipts(household_id);
