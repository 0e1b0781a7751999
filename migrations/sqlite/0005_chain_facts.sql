-- Hash version 2 (src/ledger): an entry's hash covers, besides what version 1 covered, each
-- posting's account identity (owner kind and id, name, type, bounded) and the entry's `facts`,
-- the ledger event it records (a voucher issued, voided or expired, a month closed, the month and
-- company of fee bills). Entries keep the version they were posted with, so a journal written
-- before still verifies; lowering an entry's version breaks its hash.
ALTER TABLE entries ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1 CHECK (hash_version IN (1, 2));
ALTER TABLE entries ADD COLUMN facts TEXT;
