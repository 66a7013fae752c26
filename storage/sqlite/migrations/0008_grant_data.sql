-- What a grant keeps besides its consent: the custom claims of its access
-- tokens (a JSON object; NULL for none), its data key (wrapped by the
-- Provider; NULL for none, and once the grant is revoked), and its data
-- values, sealed under that key, which go with the grant.
ALTER TABLE grants ADD COLUMN claims TEXT;
ALTER TABLE grants ADD COLUMN data_key BLOB;
CREATE TABLE grant_data (
    grant_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0,  -- 0: lives as long as the grant
    PRIMARY KEY (grant_id, name)
) WITHOUT ROWID;
-- Sweep deletes expired values.
CREATE INDEX grant_data_expires ON grant_data (expires_at) WHERE expires_at > 0;
