-- ListSubjectGrants (one query per code redemption) lists a subject's
-- active grants by creation time: an index in that order spares a sort.
DROP INDEX grants_subject;
CREATE INDEX grants_subject ON grants (subject, created_at) WHERE revoked_at = 0;
