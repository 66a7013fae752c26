-- What a grant keeps besides its consent: the custom claims of its access
-- tokens (a JSON object, NULL for none; json rather than jsonb, which
-- refuses the escape \u0000 that a JSON string may hold), its data key
-- (wrapped by the Provider; NULL for none, and once the grant is revoked),
-- and its data values, sealed under that key, which go with the grant.
ALTER TABLE grants ADD COLUMN claims json;
ALTER TABLE grants ADD COLUMN data_key bytea;
CREATE TABLE grant_data (
    grant_id   text NOT NULL,
    name       text NOT NULL,
    sealed     bytea NOT NULL,
    expires_at timestamptz,  -- NULL: lives as long as the grant
    PRIMARY KEY (grant_id, name)
);
-- Sweep deletes expired values.
CREATE INDEX grant_data_expires ON grant_data (expires_at) WHERE expires_at IS NOT NULL;
