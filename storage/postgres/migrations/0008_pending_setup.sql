-- What a setup step completed with when the owner approved a request
-- (sealed by the Provider), kept until the request completes; NULL for
-- none.
ALTER TABLE pending ADD COLUMN setup bytea;
