package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

const pendingCols = `id, handle_hash, user_code_hash, ` + paramCols + `, status, subject, created_at, expires_at, device_code_hash, setup`

var (
	qCreatePending   = `INSERT INTO pending (` + pendingCols + `) VALUES (` + placeholders(1, 16) + `)`
	qPendingByDevice = `SELECT ` + pendingCols + ` FROM pending WHERE device_code_hash = $1 AND device_code_hash <> ''`
	qPendingByHandle = `SELECT ` + pendingCols + ` FROM pending WHERE handle_hash = $1 AND ` + live(2)
	qPendingByCode   = `SELECT ` + pendingCols + ` FROM pending WHERE user_code_hash = $1 AND ` + live(2)
	qListPending     = `SELECT ` + pendingCols + ` FROM pending WHERE status = $1 AND ` + live(2) + ` ORDER BY created_at NULLS FIRST, seq`
	// qDecide and qComplete are the compare-and-sets on status.
	qDecide      = `UPDATE pending SET status = $2, subject = $3, setup = $6 WHERE id = $1 AND status = $4 AND ` + live(5)
	qComplete    = `UPDATE pending SET status = $2, setup = NULL WHERE id = $1 AND status = $3 AND ` + live(4)
	qPendingLive = `SELECT EXISTS (SELECT 1 FROM pending WHERE id = $1 AND ` + live(2) + `)`
)

// CompletePending's inserts of the grant and the code.
var (
	qInsertGrant = `INSERT INTO grants (` + grantCols + `, data_key) VALUES (` + placeholders(1, 13) + `)`
	qInsertCode  = `INSERT INTO codes (` + codeCols + `) VALUES (` + placeholders(1, 12) + `)`
)

func scanPending(row pgx.Row) (*storage.PendingRecord, error) {
	var p storage.PendingRecord
	var created, exp pgtype.Timestamptz
	dest := append([]any{&p.ID, &p.HandleHash, &p.UserCodeHash}, paramDest(&p.AuthorizationParams)...)
	if err := row.Scan(append(dest, &p.Status, &p.Subject, &created, &exp, &p.DeviceCodeHash, &p.Setup)...); err != nil {
		return nil, err
	}
	p.Scopes = decodeList(p.Scopes)
	p.CreatedAt, p.ExpiresAt = fromTS(created), fromTS(exp)
	return &p, nil
}

// grantArgs returns the arguments of qInsertGrant for g.
func grantArgs(g *storage.GrantRecord) ([]any, error) {
	claims, err := encodeClaims(g.Claims)
	if err != nil {
		return nil, err
	}
	return []any{g.ID, g.ClientID, g.Subject, encodeList(g.Scopes), g.Resource,
		ts(g.CreatedAt), ts(g.LastUsedAt), ts(g.RevokedAt), g.RedirectURI, claims, g.GrantType, ts(g.ExpiresAt), g.DataKey}, nil
}

func codeArgs(c *storage.CodeRecord) []any {
	args := append([]any{c.Hash, c.GrantID, c.Subject}, paramArgs(&c.AuthorizationParams)...)
	return append(args, ts(c.ExpiresAt), ts(c.ConsumedAt))
}

// CreatePending implements storage.PendingStore. IDs, handles and user
// codes stay taken until Sweep deletes the expired request.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	args := append([]any{p.ID, p.HandleHash, p.UserCodeHash}, paramArgs(&p.AuthorizationParams)...)
	args = append(args, p.Status, p.Subject, ts(p.CreatedAt), ts(p.ExpiresAt), p.DeviceCodeHash, p.Setup)
	_, err := s.pool.Exec(ctx, qCreatePending, args...)
	return wrap("create pending", err)
}

// GetPendingByDeviceCode implements storage.PendingStore.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByDevice, deviceCodeHash))
	return p, wrap("get pending by device code", err)
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByHandle, handleHash, now))
	return p, wrap("get pending by handle", err)
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByCode, userCodeHash, now))
	return p, wrap("get pending by user code", err)
}

// casPending runs, in tx, a compare-and-set UPDATE on a request's status.
// If it changed no row, the request is missing or expired
// (storage.ErrNotFound) or in another state (storage.ErrConflict).
func casPending(ctx context.Context, tx pgx.Tx, id string, now time.Time, query string, args ...any) error {
	tag, err := tx.Exec(ctx, query, args...)
	switch {
	case err != nil:
		return err
	case tag.RowsAffected() > 0:
		return nil
	}
	switch ok, err := exists(ctx, tx, qPendingLive, id, now); {
	case err != nil:
		return err
	case ok:
		return errPendingState
	}
	return storage.ErrNotFound
}

// DecidePending implements storage.PendingStore with a compare-and-set on
// the request's status. A status other than oauth.PendingApproved or
// oauth.PendingDenied is an error.
func (s *Store) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error {
	if status != oauth.PendingApproved && status != oauth.PendingDenied {
		return fmt.Errorf("postgres: decide pending: invalid status %q", status)
	}
	return wrap("decide pending", s.tx(ctx, func(tx pgx.Tx) error {
		return casPending(ctx, tx, id, now, qDecide, id, status, subject, oauth.PendingWaiting, now, setup)
	}))
}

// CompletePending implements storage.PendingStore in one transaction: a
// compare-and-set of the request's status from approved to completed
// (clearing its setup), then the grant, its values and the code are
// inserted; the values under the grant's ID, whatever their GrantID.
// storage.ErrNotFound if the request is missing or expired;
// storage.ErrConflict if it is not approved, the grant's ID or the code's
// hash is taken, or two values share a name.
func (s *Store) CompletePending(ctx context.Context, id string, grant *storage.GrantRecord, code *storage.CodeRecord, now time.Time) error {
	gArgs, err := grantArgs(grant)
	if err != nil {
		return fmt.Errorf("postgres: complete pending: %w", err)
	}
	cArgs := codeArgs(code)
	return wrap("complete pending", s.tx(ctx, func(tx pgx.Tx) error {
		err := casPending(ctx, tx, id, now, qComplete, id, oauth.PendingCompleted, oauth.PendingApproved, now)
		if err != nil {
			return err
		}
		if err := insertGrant(ctx, tx, grant, gArgs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qInsertCode, cArgs...)
		return err
	}))
}

// ListPending implements storage.PendingStore, ordering by CreatedAt, then
// by insertion.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	out, err := list(ctx, s.pool, scanPending, qListPending, oauth.PendingWaiting, now)
	return out, wrap("list pending", err)
}
