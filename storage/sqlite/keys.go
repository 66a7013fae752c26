package sqlite

import (
	"context"

	"github.com/mcp-oauth/oauth/storage"
)

var (
	qListKeys   = `SELECT id, alg, private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, rowid DESC`
	qRetireKeys = `UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0`
	qInsertKey  = `INSERT INTO signing_keys (id, alg, private, created_at, retired_at) VALUES (?, ?, ?, ?, 0)`
	qDeleteKey  = `DELETE FROM signing_keys WHERE id = ?`
)

func scanKey(row scanner) (*storage.KeyRecord, error) {
	var k storage.KeyRecord
	var created, retired int64
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = fromMS(created), fromMS(retired)
	return &k, nil
}

// ListKeys implements storage.KeyStore, ordering by CreatedAt, newest
// first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	out, err := list(s, ctx, scanKey, qListKeys)
	return out, wrap("list keys", err)
}

// AddKey implements storage.KeyStore in one write transaction. k is stored
// as active (its RetiredAt is ignored); storage.ErrConflict if its ID is
// taken.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	return wrap("add key", s.update(ctx, func(t wtx) error {
		if _, err := t.exec(qRetireKeys, ms(k.CreatedAt)); err != nil {
			return err
		}
		private := k.Private
		if private == nil {
			private = []byte{} // NOT NULL
		}
		_, err := t.exec(qInsertKey,
			k.ID, k.Algorithm, private, ms(k.CreatedAt))
		return err
	}))
}

// DeleteKey implements storage.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return wrap("delete key", affected(s.exec(ctx, qDeleteKey, id)))
}
