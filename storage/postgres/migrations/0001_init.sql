-- Initial schema of the PostgreSQL storage.Store.
--
-- Names are unqualified: the tables are created in the first existing
-- schema of the connection's search_path (current_schema()).
--
-- Times are timestamptz (microsecond precision); NULL stands for the zero
-- time.Time: "not set", and for expires_at "never expires".
-- Credentials appear only as hex SHA-256 hashes (columns named *hash).
-- Lists of scopes are text[]; '{}' means none.
-- seq (an identity column) records insertion order, the tie-breaker of the
-- "oldest first" listings.
--
-- There are no foreign keys on purpose: grants outlive their client (revoked)
-- until Sweep deletes them, and the atomic operations check a grant's state
-- explicitly inside their transaction.

CREATE TABLE clients (
    id          text PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    secret_hash text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL,            -- oauthex.ClientRegistrationMetadata
    issued_at   timestamptz,
    expires_at  timestamptz
);
CREATE INDEX clients_issued ON clients (issued_at NULLS FIRST, seq);
CREATE INDEX clients_expires ON clients (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE grants (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    client_id    text NOT NULL,
    subject      text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    resource     text NOT NULL,
    created_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_active ON grants (created_at NULLS FIRST, seq) WHERE revoked_at IS NULL;
CREATE INDEX grants_revoked ON grants (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE codes (
    hash                  text PRIMARY KEY,
    grant_id              text NOT NULL,
    subject               text NOT NULL,
    -- oauth.AuthorizationParams
    client_id             text NOT NULL,
    redirect_uri          text NOT NULL,
    redirect_uri_explicit boolean NOT NULL,
    state                 text NOT NULL,
    scopes                text[] NOT NULL DEFAULT '{}',
    code_challenge        text NOT NULL,
    resource              text NOT NULL,
    --
    expires_at            timestamptz,
    consumed_at           timestamptz
);
CREATE INDEX codes_grant ON codes (grant_id);
CREATE INDEX codes_expires ON codes (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    hash       text PRIMARY KEY,
    client_id  text NOT NULL,
    grant_id   text NOT NULL,
    subject    text NOT NULL,
    scopes     text[] NOT NULL DEFAULT '{}',
    resource   text NOT NULL,
    created_at timestamptz,
    expires_at timestamptz,
    parent     text NOT NULL DEFAULT '',  -- hash of the token this one replaced
    successor  text NOT NULL DEFAULT '',  -- hash of the token that replaced this one
    spent      boolean NOT NULL DEFAULT false
);
CREATE INDEX refresh_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_expires ON refresh_tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE pending (
    id                    text PRIMARY KEY,
    seq                   bigint GENERATED ALWAYS AS IDENTITY,
    handle_hash           text NOT NULL UNIQUE,
    user_code_hash        text NOT NULL UNIQUE,
    -- oauth.AuthorizationParams
    client_id             text NOT NULL,
    redirect_uri          text NOT NULL,
    redirect_uri_explicit boolean NOT NULL,
    state                 text NOT NULL,
    scopes                text[] NOT NULL DEFAULT '{}',
    code_challenge        text NOT NULL,
    resource              text NOT NULL,
    --
    status                text NOT NULL,  -- storage.Pending*
    subject               text NOT NULL DEFAULT '',
    created_at            timestamptz,
    expires_at            timestamptz
);
CREATE INDEX pending_status ON pending (status, created_at NULLS FIRST, seq);
CREATE INDEX pending_expires ON pending (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE signing_keys (
    id         text PRIMARY KEY,          -- JWS kid
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    alg        text NOT NULL,
    private    bytea NOT NULL,            -- PKCS #8 DER
    created_at timestamptz,
    retired_at timestamptz
);
