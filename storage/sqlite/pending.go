package sqlite

import (
	"context"
	"fmt"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

const pendingCols = `id, handle_hash, user_code_hash, ` + paramCols + `, status, subject, created_at, expires_at, device_code_hash, setup`

var (
	qCreatePending   = `INSERT INTO pending (` + pendingCols + `) VALUES (` + placeholders(16) + `)`
	qPendingByDevice = `SELECT ` + pendingCols + ` FROM pending WHERE device_code_hash = ? AND device_code_hash <> ''`
	qPendingByHandle = `SELECT ` + pendingCols + ` FROM pending WHERE handle_hash = ? AND ` + live
	qPendingByCode   = `SELECT ` + pendingCols + ` FROM pending WHERE user_code_hash = ? AND ` + live
	qListPending     = `SELECT ` + pendingCols + ` FROM pending WHERE status = ? AND ` + live + ` ORDER BY created_at, rowid`
	// qDecide and qComplete are the compare-and-sets on status.
	qDecide      = `UPDATE pending SET status = ?, subject = ?, setup = ? WHERE id = ? AND status = ? AND ` + live
	qComplete    = `UPDATE pending SET status = ?, setup = NULL WHERE id = ? AND status = ? AND ` + live
	qPendingLive = `SELECT 1 FROM pending WHERE id = ? AND ` + live
)

// CompletePending's inserts of the grant and the code.
var (
	qInsertGrant = `INSERT INTO grants (` + grantCols + `, data_key) VALUES (` + placeholders(13) + `)`
	qInsertCode  = `INSERT INTO codes (` + codeCols + `) VALUES (` + placeholders(12) + `)`
)

func scanPending(row scanner) (*storage.PendingRecord, error) {
	var p storage.PendingRecord
	var scopes string
	var created, exp int64
	dest := append([]any{&p.ID, &p.HandleHash, &p.UserCodeHash}, paramDest(&p.AuthorizationParams, &scopes)...)
	if err := row.Scan(append(dest, &p.Status, &p.Subject, &created, &exp, &p.DeviceCodeHash, &p.Setup)...); err != nil {
		return nil, err
	}
	var err error
	if p.Scopes, err = decodeList(scopes); err != nil {
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = fromMS(created), fromMS(exp)
	return &p, nil
}

// CreatePending implements storage.PendingStore. IDs, handles and user
// codes stay taken until Sweep deletes the expired request.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	params, err := paramArgs(&p.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: create pending: %w", err)
	}
	args := append([]any{p.ID, p.HandleHash, p.UserCodeHash}, params...)
	args = append(args, p.Status, p.Subject, ms(p.CreatedAt), ms(p.ExpiresAt), p.DeviceCodeHash, nullBlob(p.Setup))
	_, err = s.exec(ctx, qCreatePending, args...)
	return wrap("create pending", err)
}

// GetPendingByDeviceCode implements storage.PendingStore.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByDevice, deviceCodeHash))
	return p, wrap("get pending by device code", err)
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByHandle, handleHash, ms(now)))
	return p, wrap("get pending by handle", err)
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByCode, userCodeHash, ms(now)))
	return p, wrap("get pending by user code", err)
}

// casPending runs a compare-and-set UPDATE on a request's status. If it
// changed no row, the request is missing or expired (storage.ErrNotFound)
// or in another state (storage.ErrConflict).
func casPending(t wtx, id string, now time.Time, query string, args ...any) error {
	n, err := t.execN(query, args...)
	switch {
	case err != nil:
		return err
	case n > 0:
		return nil
	}
	switch ok, err := t.exists(qPendingLive, id, ms(now)); {
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
		return fmt.Errorf("sqlite: decide pending: invalid status %q", status)
	}
	return wrap("decide pending", s.update(ctx, func(t wtx) error {
		return casPending(t, id, now, qDecide, status, subject, nullBlob(setup), id, oauth.PendingWaiting, ms(now))
	}))
}

// CompletePending implements storage.PendingStore in one write transaction:
// a compare-and-set of the request's status from approved to completed
// (clearing its setup), then the grant, its values and the code are
// inserted; the values under the grant's ID, whatever their GrantID.
// storage.ErrNotFound if the request is missing or expired;
// storage.ErrConflict if it is not approved, the grant's ID or the code's
// hash is taken, or two values share a name.
func (s *Store) CompletePending(ctx context.Context, id string, grant *storage.GrantRecord, code *storage.CodeRecord, now time.Time) error {
	params, err := paramArgs(&code.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: complete pending: %w", err)
	}
	codeArgs := append([]any{code.Hash, code.GrantID, code.Subject}, params...)
	codeArgs = append(codeArgs, ms(code.ExpiresAt), ms(code.ConsumedAt))
	return wrap("complete pending", s.update(ctx, func(t wtx) error {
		err := casPending(t, id, now, qComplete, oauth.PendingCompleted, id, oauth.PendingApproved, ms(now))
		if err != nil {
			return err
		}
		if err := t.insertGrant(grant); err != nil {
			return err
		}
		_, err = t.exec(qInsertCode, codeArgs...)
		return err
	}))
}

// nullBlob returns b for a nullable BLOB column: NULL when b is nil.
func nullBlob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// ListPending implements storage.PendingStore, ordering by CreatedAt, then
// by insertion.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	out, err := list(s, ctx, scanPending, qListPending, oauth.PendingWaiting, ms(now))
	return out, wrap("list pending", err)
}
