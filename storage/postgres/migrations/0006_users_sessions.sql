-- Console users of the built-in sign-in, and console sessions (their
-- cookie values appear only as SHA-256 hashes).
CREATE TABLE users (
    name          text PRIMARY KEY,
    password_hash text NOT NULL,
    created_at    timestamptz,
    failures      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    seq           bigint GENERATED ALWAYS AS IDENTITY
);
CREATE TABLE sessions (
    hash            text PRIMARY KEY,
    user_name       text NOT NULL,
    created_at      timestamptz,
    idle_expires_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expires ON sessions (expires_at);
