-- Grants that no owner approved (client credentials, JWT assertions):
-- the grant type that made them ('' for an approved grant), and when they
-- lapse (NULL: while the grant has a code or a refresh token).
ALTER TABLE grants ADD COLUMN grant_type text NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN expires_at timestamptz;
