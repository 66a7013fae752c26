package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

var (
	// qGetGrantData reads a value and its grant's data key in one query,
	// only while the grant is active and the value live.
	qGetGrantData = `SELECT g.data_key, d.sealed, d.expires_at FROM grants g JOIN grant_data d ON d.grant_id = g.id
WHERE g.id = ? AND g.revoked_at = 0 AND d.name = ? AND (d.expires_at = 0 OR d.expires_at > ?)`
	qGetGrantKey = `SELECT data_key FROM grants WHERE id = ? AND revoked_at = 0`
)

var (
	qInsertData  = `INSERT INTO grant_data (grant_id, name, sealed, expires_at) VALUES (?, ?, ?, ?)`
	qPutData     = qInsertData + ` ON CONFLICT (grant_id, name) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at`
	qGrantActive = `SELECT 1 FROM grants WHERE id = ? AND revoked_at = 0`
	// qCountData counts a grant's live values other than the one named.
	qCountData  = `SELECT count(*) FROM grant_data WHERE grant_id = ? AND name <> ? AND ` + live
	qDeleteData = `DELETE FROM grant_data WHERE grant_id = ? AND name = ?`
)

// GetGrantData implements storage.GrantDataStore with one query.
func (s *Store) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	var key []byte
	d := &storage.GrantDataRecord{GrantID: grantID, Name: name}
	var exp int64
	if err := s.row(ctx, qGetGrantData, grantID, name, ms(now)).Scan(&key, &d.Sealed, &exp); err != nil {
		return nil, nil, wrap("get grant data", err)
	}
	d.ExpiresAt = fromMS(exp)
	return key, d, nil
}

// GetGrantKey implements storage.GrantDataStore; a grant without a data
// key has a nil one.
func (s *Store) GetGrantKey(ctx context.Context, grantID string) ([]byte, error) {
	var key []byte
	if err := s.row(ctx, qGetGrantKey, grantID).Scan(&key); err != nil {
		return nil, wrap("get grant key", err)
	}
	return key, nil
}

// PutGrantData implements storage.GrantDataStore in one write transaction:
// the grant must be active and its other live values fewer than
// maxValues, then rec is inserted or replaces the value of its name. The
// write lock, held from the transaction's start, orders concurrent puts,
// also from other processes, so none sees a count another changes.
func (s *Store) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	return wrap("put grant data", s.update(ctx, func(t wtx) error {
		switch ok, err := t.exists(qGrantActive, rec.GrantID); {
		case err != nil:
			return err
		case !ok:
			return storage.ErrNotFound
		}
		var n int
		if err := t.row(qCountData, rec.GrantID, rec.Name, ms(now)).Scan(&n); err != nil {
			return err
		}
		if n+1 > maxValues {
			return fmt.Errorf("grant would have %d values, more than %d: %w", n+1, maxValues, storage.ErrLimit)
		}
		_, err := t.exec(qPutData, dataArgs(rec.GrantID, rec)...)
		return err
	}))
}

// DeleteGrantData implements storage.GrantDataStore.
func (s *Store) DeleteGrantData(ctx context.Context, grantID, name string) error {
	_, err := s.exec(ctx, qDeleteData, grantID, name)
	return wrap("delete grant data", err)
}

// dataArgs returns the arguments of qInsertData for d, of grant grantID.
func dataArgs(grantID string, d *storage.GrantDataRecord) []any {
	sealed := d.Sealed
	if sealed == nil {
		sealed = []byte{} // the column is NOT NULL
	}
	return []any{grantID, d.Name, sealed, ms(d.ExpiresAt)}
}

// recordQueries read active grants with their data keys (grants), and
// their live values (data), for the grants that one condition selects.
type recordQueries struct{ grants, data string }

// grantRecordQueries returns the recordQueries of the active grants that
// cond, a condition on table grants, selects. grants takes cond's
// arguments; data takes them and then now.
func grantRecordQueries(cond string) recordQueries {
	active := `revoked_at = 0 AND (` + cond + `)`
	return recordQueries{
		grants: `SELECT ` + grantCols + `, data_key FROM grants WHERE ` + active,
		data: `SELECT grant_id, name, sealed, expires_at FROM grant_data
WHERE grant_id IN (SELECT id FROM grants WHERE ` + active + `) AND ` + live,
	}
}

// The grant records that RevokeGrant, DeleteClient and Sweep return.
var (
	rqGrant  = grantRecordQueries(`id = ?`)
	rqClient = grantRecordQueries(`client_id = ?`)
	rqLapsed = grantRecordQueries(`client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`)
	rqOrphan = grantRecordQueries(orphan)
)

// records reads, in t, the active grants that q selects with args, each
// with its data key and the values live at now.
func (t wtx) records(q recordQueries, now time.Time, args ...any) ([]*storage.GrantRecord, error) {
	rows, err := t.query(q.grants, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []*storage.GrantRecord
	byID := map[string]*storage.GrantRecord{}
	for rows.Next() {
		r := new(storage.GrantRecord)
		if err := scanGrantInto(rows, &r.Grant, &r.DataKey); err != nil {
			return nil, err
		}
		recs = append(recs, r)
		byID[r.ID] = r
	}
	if err := rows.Err(); err != nil || len(recs) == 0 {
		return nil, err
	}
	rows.Close()
	if rows, err = t.query(q.data, append(args, ms(now))...); err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d := new(storage.GrantDataRecord)
		var exp int64
		if err := rows.Scan(&d.GrantID, &d.Name, &d.Sealed, &exp); err != nil {
			return nil, err
		}
		d.ExpiresAt = fromMS(exp)
		if r := byID[d.GrantID]; r != nil {
			r.Data = append(r.Data, d)
		}
	}
	return recs, rows.Err()
}
