-- The redirect URI a grant was approved for (re-authorization replaces the
-- grant of the same client, subject and, for metadata-document clients,
-- redirect URI).
ALTER TABLE grants ADD COLUMN redirect_uri text NOT NULL DEFAULT '';
