package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

var (
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (` + placeholders(5) + `)`
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = ? AND ` + live
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE ` + live + ` ORDER BY issued_at, rowid`
)

var (
	qTouchClient        = `UPDATE clients SET expires_at = ? WHERE id = ?`
	qDeleteClientCodes  = `DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)`
	qDeleteClientTokens = `DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)`
	qDeleteClientData   = `DELETE FROM grant_data WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)`
	qRevokeClientGrants = `UPDATE grants SET revoked_at = ?, data_key = NULL WHERE client_id = ? AND revoked_at = 0`
	qDeleteClient       = `DELETE FROM clients WHERE id = ?`
)

func scanClient(row scanner) (*oauth.Client, error) {
	var c oauth.Client
	var md string
	var issued, expires int64
	if err := row.Scan(&c.ID, &c.SecretHash, &md, &issued, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(md), &c.ClientRegistrationMetadata); err != nil {
		return nil, fmt.Errorf("decode client metadata: %w", err)
	}
	c.IssuedAt, c.ExpiresAt = fromMS(issued), fromMS(expires)
	return &c, nil
}

// CreateClient implements storage.ClientStore. The registration metadata is
// stored as its RFC 7591 JSON.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	md, err := json.Marshal(&c.ClientRegistrationMetadata)
	if err != nil {
		return fmt.Errorf("sqlite: create client: encode metadata: %w", err)
	}
	_, err = s.exec(ctx, qCreateClient, c.ID, c.SecretHash, string(md), ms(c.IssuedAt), ms(c.ExpiresAt))
	return wrap("create client", err)
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	c, err := scanClient(s.row(ctx, qGetClient, id, ms(now)))
	return c, wrap("get client", err)
}

// TouchClient implements storage.ClientStore; storage.ErrNotFound if there
// is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	return wrap("touch client", affected(s.exec(ctx, qTouchClient, ms(expiresAt), id)))
}

// DeleteClient implements storage.ClientStore in one transaction: the
// client's active grants are read with their data keys and live values,
// its grants are revoked as by RevokeGrant, then the client is deleted.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	var ended []*storage.GrantRecord
	err := s.update(ctx, func(t wtx) error {
		var err error
		if ended, err = t.records(rqClient, now, id); err != nil {
			return err
		}
		for _, q := range []string{qDeleteClientCodes, qDeleteClientTokens, qDeleteClientData} {
			if _, err := t.exec(q, id); err != nil {
				return err
			}
		}
		n, err := t.execN(qRevokeClientGrants, ms(now), id)
		if err != nil {
			return err
		}
		if err := affected(t.exec(qDeleteClient, id)); err != nil {
			return err
		}
		return t.countRevocations(n + 1) // the grants and the client
	})
	if err != nil {
		return nil, wrap("delete client", err)
	}
	return ended, nil
}

// ListClients implements storage.ClientStore, ordering by IssuedAt, then
// by insertion.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	out, err := list(s, ctx, scanClient, qListClients, ms(now))
	return out, wrap("list clients", err)
}
