-- Initial schema of the embedded storage.Store.
--
-- Times are INTEGER Unix milliseconds (UTC); 0 stands for the zero
-- time.Time: "not set", and for expires_at "never expires".
-- Credentials appear only as hex SHA-256 hashes (columns named *hash).
-- Lists of scopes are JSON arrays of strings; '[]' means none.
-- Booleans are 0 or 1.
--
-- There are no foreign keys on purpose: grants outlive their client (revoked)
-- until Sweep deletes them, and the atomic operations check a grant's state
-- explicitly inside their transaction.

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL,            -- oauthex.ClientRegistrationMetadata, JSON
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX clients_expires ON clients (expires_at) WHERE expires_at > 0;

CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0,
    revoked_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_revoked ON grants (revoked_at) WHERE revoked_at > 0;

CREATE TABLE codes (
    hash                  TEXT PRIMARY KEY,
    grant_id              TEXT NOT NULL,
    subject               TEXT NOT NULL,
    -- oauth.AuthorizationParams
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit INTEGER NOT NULL,
    state                 TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    resource              TEXT NOT NULL,
    --
    expires_at            INTEGER NOT NULL,
    consumed_at           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX codes_grant ON codes (grant_id);
CREATE INDEX codes_expires ON codes (expires_at) WHERE expires_at > 0;

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    parent     TEXT NOT NULL DEFAULT '',  -- hash of the token this one replaced
    successor  TEXT NOT NULL DEFAULT '',  -- hash of the token that replaced this one
    spent      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_expires ON refresh_tokens (expires_at) WHERE expires_at > 0;

CREATE TABLE pending (
    id                    TEXT PRIMARY KEY,
    handle_hash           TEXT NOT NULL UNIQUE,
    user_code_hash        TEXT NOT NULL UNIQUE,
    -- oauth.AuthorizationParams
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit INTEGER NOT NULL,
    state                 TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    resource              TEXT NOT NULL,
    --
    status                TEXT NOT NULL,  -- storage.Pending*
    subject               TEXT NOT NULL DEFAULT '',
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL
);
CREATE INDEX pending_status ON pending (status, created_at);
CREATE INDEX pending_expires ON pending (expires_at) WHERE expires_at > 0;

CREATE TABLE signing_keys (
    id         TEXT PRIMARY KEY,          -- JWS kid
    alg        TEXT NOT NULL,
    private    BLOB NOT NULL,             -- PKCS #8 DER
    created_at INTEGER NOT NULL,
    retired_at INTEGER NOT NULL DEFAULT 0
);
