-- A counter of grants that stopped being active, updated in the revoking
-- transaction, so that a provider caching grant states learns of
-- revocations made by any process with one cheap read (RevocationCount).
CREATE TABLE revocation_count (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  n  INTEGER NOT NULL
);
INSERT INTO revocation_count (id, n) VALUES (1, 0);
