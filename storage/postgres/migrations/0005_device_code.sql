-- RFC 8628 device authorization requests are pending requests that a
-- device polls for by the hash of its device code ('' for browser
-- requests).
ALTER TABLE pending ADD COLUMN device_code_hash text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX pending_device_code ON pending (device_code_hash) WHERE device_code_hash <> '';
