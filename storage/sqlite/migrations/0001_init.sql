-- Times are Unix milliseconds (UTC); 0 means "not set".
-- Credentials appear only as hex SHA-256 hashes.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL,            -- RFC 7591 client metadata, JSON
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX clients_expires ON clients (expires_at) WHERE expires_at > 0;

CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    scopes       TEXT NOT NULL,           -- JSON array
    resource     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0,
    revoked_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_client ON grants (client_id);

CREATE TABLE codes (
    hash        TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    params      TEXT NOT NULL,            -- oauth.AuthorizationParams, JSON
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX codes_grant ON codes (grant_id);
CREATE INDEX codes_expires ON codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    parent     TEXT NOT NULL DEFAULT '',
    successor  TEXT NOT NULL DEFAULT '',
    spent      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_expires ON refresh_tokens (expires_at);

CREATE TABLE pending (
    id             TEXT PRIMARY KEY,
    handle_hash    TEXT NOT NULL UNIQUE,
    user_code_hash TEXT NOT NULL UNIQUE,
    params         TEXT NOT NULL,
    status         TEXT NOT NULL,
    subject        TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX pending_expires ON pending (expires_at);

CREATE TABLE signing_keys (
    id         TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    private    BLOB NOT NULL,             -- PKCS #8 DER
    created_at INTEGER NOT NULL,
    retired_at INTEGER NOT NULL DEFAULT 0
);
