package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	oauth "github.com/mcp-oauth/oauth"
)

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

var (
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (` + placeholders(1, 5) + `)`
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = $1 AND ` + live(2)
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE ` + live(1) + ` ORDER BY issued_at NULLS FIRST, seq`
	qTouchClient  = `UPDATE clients SET expires_at = $2 WHERE id = $1`

	// DeleteClient's statements, in lock order: client, grants, codes,
	// tokens.
	qDeleteClient       = `DELETE FROM clients WHERE id = $1`
	qRevokeClientGrants = `UPDATE grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL`
	qDeleteClientCodes  = `DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
	qDeleteClientTokens = `DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
)

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
// client is deleted, then its grants are revoked as by RevokeGrant.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return wrap("delete client", s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, qDeleteClient, id)); err != nil {
			return err
		}
		// Revoking locks the grant rows before their codes and tokens are
		// deleted; see the package comment.
		tag, err := tx.Exec(ctx, qRevokeClientGrants, id, ts(now))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteClientCodes, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteClientTokens, id); err != nil {
			return err
		}
		return countRevocations(ctx, tx, tag.RowsAffected()+1) // the grants and the client
	}))
}

// ListClients implements storage.ClientStore, ordering by IssuedAt, then
// by insertion.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	out, err := list(ctx, s.pool, scanClient, qListClients, now)
	return out, wrap("list clients", err)
}
