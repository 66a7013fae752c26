package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mcp-oauth/oauth/storage"
)

// dataCols are the columns of storage.GrantDataRecord, in the order of
// scanData.
const dataCols = `grant_id, name, sealed, expires_at`

var (
	// qGetGrantData reads a value and its grant's data key in one query,
	// only while the grant is active and the value live.
	qGetGrantData = `SELECT g.data_key, d.sealed, d.expires_at FROM grants g JOIN grant_data d ON d.grant_id = g.id
WHERE g.id = $1 AND g.revoked_at IS NULL AND d.name = $2 AND (d.expires_at IS NULL OR d.expires_at > $3)`
	qGetGrantKey = `SELECT data_key FROM grants WHERE id = $1 AND revoked_at IS NULL`

	qInsertData = `INSERT INTO grant_data (` + dataCols + `) VALUES ($1, $2, $3, $4)`
	qPutData    = qInsertData + ` ON CONFLICT (grant_id, name) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at`
	// qLockActiveGrant locks an active grant's row, which serializes the
	// puts of one grant and orders them with its revocation.
	qLockActiveGrant = `SELECT true FROM grants WHERE id = $1 AND revoked_at IS NULL FOR NO KEY UPDATE`
	// qCountData counts a grant's live values other than the one named.
	qCountData  = `SELECT count(*) FROM grant_data WHERE grant_id = $1 AND name <> $2 AND ` + live(3)
	qDeleteData = `DELETE FROM grant_data WHERE grant_id = $1 AND name = $2`
)

// GetGrantData implements storage.GrantDataStore with one query.
func (s *Store) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	var key []byte
	d := &storage.GrantDataRecord{GrantID: grantID, Name: name}
	var exp pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, qGetGrantData, grantID, name, now).Scan(&key, &d.Sealed, &exp); err != nil {
		return nil, nil, wrap("get grant data", err)
	}
	d.ExpiresAt = fromTS(exp)
	return key, d, nil
}

// GetGrantKey implements storage.GrantDataStore; a grant without a data
// key has a nil one.
func (s *Store) GetGrantKey(ctx context.Context, grantID string) ([]byte, error) {
	var key []byte
	if err := s.pool.QueryRow(ctx, qGetGrantKey, grantID).Scan(&key); err != nil {
		return nil, wrap("get grant key", err)
	}
	return key, nil
}

// PutGrantData implements storage.GrantDataStore in one transaction. It
// locks the row of the active grant first (FOR NO KEY UPDATE), so that the
// puts of one grant, on any replica, run one at a time and each counts
// what the others stored, and so that a revocation either waits for the
// put, then deletes and returns its value, or the put waits for the
// revocation and finds the grant revoked (storage.ErrNotFound). Then the
// grant's other live values must be fewer than maxValues, and rec is
// inserted or replaces the value of its name.
func (s *Store) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	return wrap("put grant data", s.tx(ctx, func(tx pgx.Tx) error {
		var ok bool
		err := tx.QueryRow(ctx, qLockActiveGrant, rec.GrantID).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, qCountData, rec.GrantID, rec.Name, now).Scan(&n); err != nil {
			return err
		}
		if n+1 > maxValues {
			return fmt.Errorf("grant would have %d values, more than %d: %w", n+1, maxValues, storage.ErrLimit)
		}
		_, err = tx.Exec(ctx, qPutData, dataArgs(rec.GrantID, rec)...)
		return err
	}))
}

// DeleteGrantData implements storage.GrantDataStore.
func (s *Store) DeleteGrantData(ctx context.Context, grantID, name string) error {
	_, err := s.pool.Exec(ctx, qDeleteData, grantID, name)
	return wrap("delete grant data", err)
}

// dataArgs returns the arguments of qInsertData for d, of grant grantID.
func dataArgs(grantID string, d *storage.GrantDataRecord) []any {
	sealed := d.Sealed
	if sealed == nil {
		sealed = []byte{} // the column is NOT NULL
	}
	return []any{grantID, d.Name, sealed, ts(d.ExpiresAt)}
}

func scanData(row pgx.Row) (*storage.GrantDataRecord, error) {
	d := new(storage.GrantDataRecord)
	var exp pgtype.Timestamptz
	if err := row.Scan(&d.GrantID, &d.Name, &d.Sealed, &exp); err != nil {
		return nil, err
	}
	d.ExpiresAt = fromTS(exp)
	return d, nil
}

// deleteData runs query, a DELETE FROM grant_data … RETURNING dataCols,
// and returns the values it deleted that were live at now, and how many
// it deleted in all.
func deleteData(ctx context.Context, tx pgx.Tx, now time.Time, query string, args ...any) ([]*storage.GrantDataRecord, int64, error) {
	all, err := list(ctx, tx, scanData, query, args...)
	if err != nil {
		return nil, 0, err
	}
	var live []*storage.GrantDataRecord
	for _, d := range all {
		if d.ExpiresAt.IsZero() || d.ExpiresAt.After(now) {
			live = append(live, d)
		}
	}
	return live, int64(len(all)), nil
}

// attachData appends each of data to the record of its grant in recs.
func attachData(recs []*storage.GrantRecord, data []*storage.GrantDataRecord) {
	byID := make(map[string]*storage.GrantRecord, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	for _, d := range data {
		if r := byID[d.GrantID]; r != nil {
			r.Data = append(r.Data, d)
		}
	}
}
