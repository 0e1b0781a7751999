-- Hash version 2 (src/ledger): an entry's hash covers, besides what version 1 covered, each
-- posting's account identity (owner kind and id, name, type, bounded) and the entry's `facts`,
-- the ledger event it records (a voucher issued, voided or expired, a month closed, the month and
-- company of fee bills). Entries keep the version they were posted with, so a journal written
-- before still verifies; lowering an entry's version breaks its hash.
ALTER TABLE entries ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 1 CHECK (hash_version IN (1, 2));
ALTER TABLE entries ADD COLUMN facts TEXT;

-- Giving an entry its place in the chain still changes nothing else, the new columns included.
CREATE OR REPLACE FUNCTION hongxin_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (NEW.id, NEW.kind, NEW.business_date, NEW.created_at, NEW.actor_token_id, NEW.policy,
            NEW.policy_hash, NEW.idempotency_key, NEW.memo, NEW.reverses, NEW.hash_version,
            NEW.facts)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.kind, OLD.business_date, OLD.created_at, OLD.actor_token_id, OLD.policy,
            OLD.policy_hash, OLD.idempotency_key, OLD.memo, OLD.reverses, OLD.hash_version,
            OLD.facts) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'journal entries are immutable';
END $$;
