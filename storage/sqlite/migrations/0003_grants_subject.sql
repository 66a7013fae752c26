-- Grant replacement lists a subject's active grants on each redemption.
CREATE INDEX grants_subject ON grants (subject) WHERE revoked_at = 0;
