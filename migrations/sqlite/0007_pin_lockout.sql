-- A household PIN locks after repeated failures (src/domain/master.rs, record_pin_attempt):
-- the count of failures in a row and the end of the current lockout (RFC 3339, UTC), kept
-- where the company's office can see them. Setting a new PIN clears both.
ALTER TABLE households ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE households ADD COLUMN pin_locked_until TEXT;
