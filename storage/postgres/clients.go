package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

var (
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (` + placeholders(1, 5) + `)`
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = $1 AND ` + live(2)
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE ` + live(1) + ` ORDER BY issued_at NULLS FIRST, seq`
	qTouchClient  = `UPDATE clients SET expires_at = $2 WHERE id = $1`

	// DeleteClient's statements, in lock order: client, grants, codes,
	// tokens, values.
	qDeleteClient = `DELETE FROM clients WHERE id = $1`
	// qRevokeClientGrants revokes the client's active grants, deleting
	// their data keys, and returns them as they were: what the update
	// leaves as it was, and the data key it deletes.
	qRevokeClientGrants = `WITH old AS (SELECT id, data_key FROM grants WHERE client_id = $1 AND revoked_at IS NULL FOR NO KEY UPDATE)
UPDATE grants g SET revoked_at = $2, data_key = NULL FROM old WHERE g.id = old.id
RETURNING ` + qualify("g", grantCols) + `, old.data_key`
	qDeleteClientCodes  = `DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
	qDeleteClientTokens = `DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
	qDeleteClientData   = `DELETE FROM grant_data WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1) RETURNING ` + dataCols
)

// qualify prefixes each of the comma-separated columns cols with table.
func qualify(table, cols string) string {
	l := strings.Split(cols, ", ")
	for i, c := range l {
		l[i] = table + "." + c
	}
	return strings.Join(l, ", ")
}

func scanClient(row pgx.Row) (*oauth.Client, error) {
	var c oauth.Client
	var md []byte
	var issued, expires pgtype.Timestamptz
	if err := row.Scan(&c.ID, &c.SecretHash, &md, &issued, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(md, &c.ClientRegistrationMetadata); err != nil {
		return nil, fmt.Errorf("decode client metadata: %w", err)
	}
	c.IssuedAt, c.ExpiresAt = fromTS(issued), fromTS(expires)
	return &c, nil
}

// CreateClient implements storage.ClientStore. The registration metadata is
// stored as its RFC 7591 JSON.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	md, err := json.Marshal(&c.ClientRegistrationMetadata)
	if err != nil {
		return fmt.Errorf("postgres: create client: encode metadata: %w", err)
	}
	_, err = s.pool.Exec(ctx, qCreateClient, c.ID, c.SecretHash, string(md), ts(c.IssuedAt), ts(c.ExpiresAt))
	return wrap("create client", err)
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, qGetClient, id, now))
	return c, wrap("get client", err)
}

// TouchClient implements storage.ClientStore; storage.ErrNotFound if there
// is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	return wrap("touch client", affected(s.pool.Exec(ctx, qTouchClient, id, ts(expiresAt))))
}

// DeleteClient implements storage.ClientStore in one transaction: the
// client is deleted, then its grants are revoked as by RevokeGrant, and
// those that were active are returned with their data keys and live
// values.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	var ended []*storage.GrantRecord
	err := s.tx(ctx, func(tx pgx.Tx) error {
		ended = nil
		if err := affected(tx.Exec(ctx, qDeleteClient, id)); err != nil {
			return err
		}
		// Revoking locks the grant rows before their codes and tokens are
		// deleted; see the package comment.
		recs, err := list(ctx, tx, scanGrantRecord, qRevokeClientGrants, id, ts(now))
		if err != nil {
			return err
		}
		for _, r := range recs {
			r.RevokedAt = time.Time{} // as it was
		}
		if _, err := tx.Exec(ctx, qDeleteClientCodes, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteClientTokens, id); err != nil {
			return err
		}
		data, _, err := deleteData(ctx, tx, now, qDeleteClientData, id)
		if err != nil {
			return err
		}
		attachData(recs, data)
		ended = recs
		return countRevocations(ctx, tx, int64(len(recs))+1) // the grants and the client
	})
	if err != nil {
		return nil, wrap("delete client", err)
	}
	return ended, nil
}

// ListClients implements storage.ClientStore, ordering by IssuedAt, then
// by insertion.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	out, err := list(ctx, s.pool, scanClient, qListClients, now)
	return out, wrap("list clients", err)
}
