package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mcp-oauth/oauth/storage"
)

var (
	qListKeys = `SELECT id, alg, private, created_at, retired_at FROM signing_keys
ORDER BY created_at DESC NULLS LAST, seq DESC`
	// qLockKeys makes AddKey transactions run one at a time (the mode
	// conflicts with itself and with writers, not with readers), so that
	// each retires the key the previous one added.
	qLockKeys   = `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`
	qRetireKeys = `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`
	qInsertKey  = `INSERT INTO signing_keys (id, alg, private, created_at) VALUES ($1, $2, $3, $4)`
	qDeleteKey  = `DELETE FROM signing_keys WHERE id = $1`
)

func scanKey(row pgx.Row) (*storage.KeyRecord, error) {
	var k storage.KeyRecord
	var created, retired pgtype.Timestamptz
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = fromTS(created), fromTS(retired)
	return &k, nil
}

// ListKeys implements storage.KeyStore, ordering by CreatedAt, newest
// first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	out, err := list(ctx, s.pool, scanKey, qListKeys)
	return out, wrap("list keys", err)
}

// AddKey implements storage.KeyStore in one transaction, which first locks
// table signing_keys against other writers. k is stored as active (its
// RetiredAt is ignored); storage.ErrConflict if its ID is taken.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	private := k.Private
	if private == nil {
		private = []byte{} // NOT NULL
	}
	return wrap("add key", s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qLockKeys); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qRetireKeys, ts(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qInsertKey, k.ID, k.Algorithm, private, ts(k.CreatedAt))
		return err
	}))
}

// DeleteKey implements storage.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return wrap("delete key", affected(s.pool.Exec(ctx, qDeleteKey, id)))
}
