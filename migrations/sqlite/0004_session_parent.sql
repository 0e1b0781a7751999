-- A web session is made from a staff token (src/web/session.rs) and names it here, so that
-- revoking the token ends the sessions made from it as well.
ALTER TABLE tokens ADD COLUMN parent_id INTEGER REFERENCES tokens(id);
CREATE INDEX tokens_by_parent ON tokens(parent_id) WHERE parent_id IS NOT NULL;
