// Package storage defines the persistence contract of the default
// authorization-server Provider (package provider) and the record types that
// cross it, and the [AccountStore] of the console's built-in sign-in (package
// approval). Backends live in subpackages: memory (tests, ephemeral), sqlite
// (the embedded default, one process) and postgres (replicas sharing one
// database); each implements both contracts. Every backend runs the
// backend-independent conformance suite in package storetest: storetest.Run
// for a Store, storetest.RunAccounts for an AccountStore.
//
// Secrets never reach a Store in plaintext: codes, refresh tokens, client
// secrets, user codes and browser handles are passed as the hex SHA-256 of
// the value (fields named Hash). Operations that must be atomic under
// concurrency (redeeming a code, rotating a refresh token, deciding or
// completing a pending request) are single methods, so that each backend can
// implement them as one statement or one transaction.
//
// Methods that read time-bounded rows take now and never return a row whose
// expiry is at or before it; Sweep deletes such rows.
package storage

import (
	"context"
	"errors"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// ErrNotFound is returned when a row does not exist or has expired.
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when an atomic operation's precondition no longer
// holds: the code was already redeemed, the refresh token already rotated,
// the pending request already decided, or the grant was revoked.
var ErrConflict = errors.New("storage: conflict")

// Store is everything the default Provider persists. The small interfaces it
// is composed of can be implemented and tested one at a time; the compiler
// rejects a backend that lacks any of them.
type Store interface {
	ClientStore
	GrantStore
	CodeStore
	RefreshTokenStore
	PendingStore
	KeyStore
	GrantDataStore

	// Sweep deletes every row that can no longer be used at now: expired
	// codes, pending requests, refresh tokens, grant data values and
	// client registrations (with their grants), revoked grants, and
	// grants left with neither a code nor a refresh token (a code that
	// expired unredeemed, or a last refresh token that expired) and whose
	// ExpiresAt is zero or not after now, each with its data; a backend that is also an AccountStore deletes
	// expired console sessions too. It returns the number of rows deleted
	// and the grants that were active until this sweep deleted them, with
	// their data key and unexpired data (so that the Provider can tell the
	// host, exactly once, that they ended).
	// It is safe to call concurrently with everything else.
	Sweep(ctx context.Context, now time.Time) (*SweepResult, error)

	// Close releases the backend's resources.
	Close() error
}

// SweepResult is what Store.Sweep deleted.
type SweepResult struct {
	// Rows counts every row deleted.
	Rows int64
	// Ended are the grants that were active when this sweep deleted them
	// (with their client's lapsed registration, or left with neither a
	// code nor a refresh token), each with its DataKey and the Data that
	// was unexpired at now; revoked grants are not among them.
	Ended []*GrantRecord
}

// ClientStore persists registered clients (RFC 7591).
type ClientStore interface {
	// CreateClient stores c; ErrConflict if its ID is taken.
	CreateClient(ctx context.Context, c *oauth.Client) error
	// GetClient returns the client, or ErrNotFound if it does not exist or
	// its registration lapsed (ExpiresAt non-zero and not after now).
	GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error)
	// TouchClient renews a registration on use: ExpiresAt becomes expiresAt.
	TouchClient(ctx context.Context, id string, expiresAt time.Time) error
	// DeleteClient removes the client and revokes all of its grants,
	// deleting their codes, refresh tokens, data keys and data, in one
	// transaction. It returns the grants that were active until then,
	// each with its DataKey and the Data that was unexpired at now.
	// ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string, now time.Time) ([]*GrantRecord, error)
	// ListClients returns all live clients, oldest first.
	ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error)
}

// GrantStore persists grants: an owner's consent for one client.
type GrantStore interface {
	// GetGrant returns the grant, revoked or not; ErrNotFound if absent.
	GetGrant(ctx context.Context, id string) (*oauth.Grant, error)
	// ListGrants returns the active grants, oldest first.
	ListGrants(ctx context.Context) ([]*oauth.Grant, error)
	// ListSubjectGrants returns the subject's active grants, oldest first.
	ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error)
	// CreateGrant stores an active grant that no owner approved, one that
	// issues access tokens only (client credentials, JWT assertions:
	// Grant.GrantType is set and Grant.ExpiresAt is not zero), with its
	// data key; ErrConflict if its ID is taken. Sweep deletes it once
	// ExpiresAt has passed.
	CreateGrant(ctx context.Context, g *GrantRecord) error
	// ExtendGrant sets the LastUsedAt of the active grant id to now and
	// moves its ExpiresAt to expiresAt if that is later, in one atomic
	// step; ErrNotFound if the grant is absent, revoked, or its ExpiresAt
	// is zero or not after now.
	ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error
	// RevokeGrant marks the grant revoked at now and deletes its codes,
	// refresh tokens, data key and data, in one transaction. If this call
	// revoked it, it returns the grant as it was (RevokedAt zero), with
	// its DataKey and the Data that was unexpired at now; revoking a
	// revoked grant returns
	// nil and no error. ErrNotFound if absent.
	RevokeGrant(ctx context.Context, id string, now time.Time) (*GrantRecord, error)
	// RevocationCount returns a counter of revocations: grants that
	// stopped being active and client registrations that were deleted. It
	// increases, atomically with the change, whenever an active grant is
	// revoked (RevokeGrant, DeleteClient) or deleted (Sweep), and whenever
	// a client is deleted (DeleteClient, or Sweep of a lapsed
	// registration); it never decreases, and operations that revoke
	// nothing leave it as it is. A Provider that keeps grant states and
	// clients in memory compares readings to learn, with one cheap query,
	// whether any of them may have changed, also by another process
	// sharing the store. Readings of different stores are not comparable.
	RevocationCount(ctx context.Context) (int64, error)
}

// RevocationWatcher is implemented by a Store that can push a signal when
// grants may have been revoked by any process sharing it, such as
// PostgreSQL with LISTEN/NOTIFY. It complements RevocationCount: a
// Provider rereads the count when signalled instead of waiting for its
// next poll.
type RevocationWatcher interface {
	// WatchRevocations calls f, from a goroutine of the store, soon after
	// a transaction that increased RevocationCount commits, and after the
	// watch (re)connects, when signals may have been missed. Calls are
	// not concurrent; f must return quickly. The watch runs until stop is
	// called or the store is closed.
	WatchRevocations(f func()) (stop func())
}

// CodeRecord is a stored authorization code. Code (the plaintext) is empty.
type CodeRecord struct {
	// Hash is the hex SHA-256 of the code.
	Hash string
	oauth.AuthorizationCode
	// ConsumedAt is zero until the code is redeemed.
	ConsumedAt time.Time
}

// CodeStore persists authorization codes. Codes are created by
// PendingStore.CompletePending.
type CodeStore interface {
	// GetCode returns the code, redeemed or not, or ErrNotFound if it does
	// not exist or has expired.
	GetCode(ctx context.Context, hash string, now time.Time) (*CodeRecord, error)
	// RedeemCode marks the code consumed, stores rt and sets the grant's
	// LastUsedAt to now, in one atomic step (one transaction per exchange).
	// Exactly one of any number of concurrent calls for one code succeeds;
	// the others get ErrConflict, as do calls for a code whose grant was
	// revoked. ErrNotFound if the code does not exist or has expired.
	RedeemCode(ctx context.Context, hash string, now time.Time, rt *RefreshRecord) error
}

// RefreshRecord is a stored refresh token. Tokens of one grant form a chain:
// each rotation stores a successor and points Successor at it.
type RefreshRecord struct {
	// Hash is the hex SHA-256 of the token.
	Hash      string
	ClientID  string
	GrantID   string
	Subject   string
	Scopes    []string
	Resource  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Parent is the hash of the token this one replaced, if any.
	Parent string
	// Successor is the hash of the token that replaced this one; empty while
	// this token is the newest of its chain.
	Successor string
	// Spent is set once a later token of the chain has been used, or this
	// token was superseded by a retry. Presenting a spent token is replay.
	Spent bool
}

// RefreshTokenStore persists refresh tokens.
type RefreshTokenStore interface {
	// GetRefreshToken returns the token, spent or not, or ErrNotFound if it
	// does not exist or has expired.
	GetRefreshToken(ctx context.Context, hash string, now time.Time) (*RefreshRecord, error)
	// RotateRefreshToken atomically replaces the token oldHash by next, and
	// sets the grant's LastUsedAt to now:
	// it succeeds only if oldHash exists, is unexpired and not spent, its
	// Successor equals expectedSuccessor and its grant is active. It then
	// sets old.Successor = next.Hash, marks the previous successor (if any)
	// and old's Parent (now superseded for good) spent, and stores next.
	// Of concurrent calls with the same expectedSuccessor exactly one
	// succeeds; the others get ErrConflict.
	RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *RefreshRecord, now time.Time) error
}

// PendingRecord is an authorization request waiting for the owner's decision.
type PendingRecord struct {
	// ID is a public identifier, safe to show in consoles and logs.
	ID string
	// HandleHash is the hex SHA-256 of the secret handle in the URL of the
	// browser tab that made the request.
	HandleHash string
	// UserCodeHash is the hex SHA-256 of the normalized user code.
	UserCodeHash string
	oauth.AuthorizationParams
	// DeviceCodeHash is the hex SHA-256 of the device code of an RFC 8628
	// device authorization request, by which the device polls; empty for
	// requests made through a browser.
	DeviceCodeHash string
	Status         oauth.PendingStatus
	// Subject is the owner who approved; empty until then.
	Subject string
	// Setup is what a setup step completed with when the owner approved
	// (opaque: sealed by the Provider), kept until CompletePending, which
	// clears it; empty when there was none.
	Setup     []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// PendingStore persists pending authorization requests.
type PendingStore interface {
	// CreatePending stores p; ErrConflict if its ID, handle, user code or
	// (non-empty) device code is taken.
	CreatePending(ctx context.Context, p *PendingRecord) error
	// GetPendingByHandle returns the unexpired request, or ErrNotFound.
	GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*PendingRecord, error)
	// GetPendingByUserCode returns the unexpired request, or ErrNotFound.
	GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*PendingRecord, error)
	// GetPendingByDeviceCode returns the request whose DeviceCodeHash is
	// deviceCodeHash, expired or not (a device is told expired_token,
	// RFC 8628 §3.5), or ErrNotFound; an empty hash is never found.
	GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*PendingRecord, error)
	// DecidePending moves a waiting, unexpired request to status (approved
	// or denied) with subject and setup (nil for none). ErrConflict if it
	// was already decided, ErrNotFound if absent or expired.
	DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error
	// CompletePending atomically moves an approved, unexpired request to
	// completed, clears its Setup, and stores grant (with its DataKey and
	// Data) and code.
	// ErrConflict if the request is not in the approved state (so it
	// yields at most one code).
	CompletePending(ctx context.Context, id string, grant *GrantRecord, code *CodeRecord, now time.Time) error
	// ListPending returns the unexpired requests still waiting, oldest first.
	ListPending(ctx context.Context, now time.Time) ([]*PendingRecord, error)
}

// GrantRecord is a grant as stored: the grant, its data key and its data.
type GrantRecord struct {
	oauth.Grant
	// DataKey is the grant's data key, wrapped by the Provider (with its
	// key-encryption key when one is configured); the store keeps it with
	// the grant and deletes it when the grant is revoked or deleted. Empty
	// for a grant with no data key.
	DataKey []byte
	// Data are the grant's values: the initial ones for CompletePending,
	// the unexpired ones in what RevokeGrant, DeleteClient and Sweep
	// return.
	Data []*GrantDataRecord
}

// GrantDataRecord is one named value kept with a grant, sealed by the
// Provider under the grant's data key: the store sees only ciphertext.
type GrantDataRecord struct {
	GrantID string
	// Name identifies the value within its grant (at most 64 bytes).
	Name string
	// Sealed is the ciphertext.
	Sealed []byte
	// ExpiresAt is when the value lapses; zero means with the grant.
	ExpiresAt time.Time
}

// GrantDataStore persists grant data. A grant's values live only while it
// is active: revoking or deleting the grant deletes them in the same
// transaction (see GrantStore.RevokeGrant, ClientStore.DeleteClient,
// Store.Sweep).
type GrantDataStore interface {
	// GetGrantData returns the data key of the active grant grantID and
	// its unexpired value name, in one read. ErrNotFound if the grant is
	// absent or revoked, or the value is absent or expired.
	GetGrantData(ctx context.Context, grantID, name string, now time.Time) (dataKey []byte, rec *GrantDataRecord, err error)
	// GetGrantKey returns the data key of the active grant (empty for a
	// grant made without one); ErrNotFound if the grant is absent or
	// revoked.
	GetGrantKey(ctx context.Context, grantID string) ([]byte, error)
	// PutGrantData stores rec, replacing the grant's value of the same
	// name, if the grant is active and, counting rec, would have at most
	// maxValues unexpired values (maxValues is positive; rec counts even
	// if it expires at now). ErrNotFound if the grant is absent or
	// revoked, ErrLimit if it would have more values.
	PutGrantData(ctx context.Context, rec *GrantDataRecord, maxValues int, now time.Time) error
	// DeleteGrantData deletes the value; deleting an absent one is not an
	// error.
	DeleteGrantData(ctx context.Context, grantID, name string) error
}

// ErrLimit is returned when a write would exceed a limit the caller set.
var ErrLimit = errors.New("storage: limit reached")

// KeyRecord is a signing key for access tokens.
type KeyRecord struct {
	// ID is the JWS key ID (kid).
	ID string
	// Algorithm is the JWS alg: "ES256" or "EdDSA".
	Algorithm string
	// Private is the PKCS #8 DER encoding of the private key.
	Private   []byte
	CreatedAt time.Time
	// RetiredAt is zero for the active key; a retired key only verifies.
	RetiredAt time.Time
}

// KeyStore persists signing keys.
type KeyStore interface {
	// ListKeys returns every key, newest first.
	ListKeys(ctx context.Context) ([]*KeyRecord, error)
	// AddKey stores k as the active key and, in the same step, retires at
	// k.CreatedAt every key that was active.
	AddKey(ctx context.Context, k *KeyRecord) error
	// DeleteKey removes a key; ErrNotFound if absent.
	DeleteKey(ctx context.Context, id string) error
}

// AccountStore persists the console's built-in sign-in (package approval):
// its users and their sessions. It is apart from Store because a host with
// its own sign-in (approval.Identity) needs none of it; the backends of this
// module implement both.
type AccountStore interface {
	UserStore
	SessionStore
}

// UserRecord is a console user of the built-in sign-in (package approval):
// an owner who approves requests.
type UserRecord struct {
	// Name identifies the user; it is the subject of the grants they
	// approve.
	Name string
	// PasswordHash is a bcrypt hash of the password.
	PasswordHash string
	CreatedAt    time.Time
	// Failures counts failed sign-ins since the last success;
	// LockedUntil is zero or the time before which sign-in is refused.
	Failures    int
	LockedUntil time.Time
}

// UserStore persists console users.
type UserStore interface {
	// CreateUser stores u; ErrConflict if the name is taken.
	CreateUser(ctx context.Context, u *UserRecord) error
	// GetUser returns the user, or ErrNotFound.
	GetUser(ctx context.Context, name string) (*UserRecord, error)
	// ListUsers returns every user, oldest first.
	ListUsers(ctx context.Context) ([]*UserRecord, error)
	// SetPassword replaces the user's password hash, clears the lockout
	// state and deletes the user's sessions (a password reset ends every
	// session, an attacker's included), atomically; ErrNotFound if absent.
	SetPassword(ctx context.Context, name, passwordHash string) error
	// RecordSignIn records the outcome of a sign-in attempt: failures and
	// lockedUntil replace the stored values, but only if the stored
	// failure count is still prevFailures (compare-and-set, so that
	// concurrent attempts, on any number of replicas, each count);
	// otherwise it changes nothing and returns ErrConflict. ErrNotFound if
	// absent.
	RecordSignIn(ctx context.Context, name string, prevFailures, failures int, lockedUntil time.Time) error
	// DeleteUser removes the user and their sessions; ErrNotFound if
	// absent.
	DeleteUser(ctx context.Context, name string) error
}

// SessionRecord is a signed-in console session.
type SessionRecord struct {
	// Hash is the hex SHA-256 of the session's cookie value.
	Hash string
	// User is the UserRecord.Name the session belongs to.
	User      string
	CreatedAt time.Time
	// IdleExpiresAt moves forward on use; ExpiresAt (absolute) never does.
	IdleExpiresAt time.Time
	ExpiresAt     time.Time
}

// SessionStore persists console sessions.
type SessionStore interface {
	// CreateSession stores s; ErrConflict if its hash is taken.
	CreateSession(ctx context.Context, s *SessionRecord) error
	// GetSession returns the session if neither of its expiries is at or
	// before now, or ErrNotFound.
	GetSession(ctx context.Context, hash string, now time.Time) (*SessionRecord, error)
	// TouchSession sets IdleExpiresAt; ErrNotFound if absent.
	TouchSession(ctx context.Context, hash string, idleExpiresAt time.Time) error
	// DeleteSession removes a session (sign-out); deleting an absent one
	// is not an error.
	DeleteSession(ctx context.Context, hash string) error
}
