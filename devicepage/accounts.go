package devicepage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

// The console's built-in sign-in: users with bcrypt-hashed passwords and
// sessions, both in the store, so that every replica (and the example's
// terminal commands) sees them. A host application that has its own
// sign-in replaces this with its own Identity.

// Defaults of AccountsOptions.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	// DefaultBcryptCost is the cost of new password hashes: ~240 ms on a
	// small server, which only sign-ins pay.
	DefaultBcryptCost = 12
	// MinPasswordLen and MaxPasswordLen bound passwords (bcrypt reads at
	// most 72 bytes).
	MinPasswordLen = 10
	MaxPasswordLen = 72
	// MaxUserNameLen bounds user names.
	MaxUserNameLen = 64
)

// Sign-in throttling. An account is locked after lockoutThreshold
// consecutive failures, for lockoutBase, doubling with each further failure
// up to lockoutMax. Each client IP may try ipAttempts times per ipWindow.
const (
	lockoutThreshold = 5
	lockoutBase      = time.Minute
	lockoutMax       = time.Hour
	ipAttempts       = 10
	ipWindow         = time.Minute
	maxTracked       = 10000
)

// sessionPrefix marks console session cookies.
const sessionPrefix = "mcp_sess_"

// Errors of sign-in. Neither says whether the name exists or which of name
// and password was wrong.
var (
	ErrSignInFailed = errors.New("devicepage: wrong user name or password")
	ErrThrottled    = errors.New("devicepage: too many sign-in attempts; wait a few minutes and try again")
	// ErrNoSession is returned for a missing, expired or signed-out session.
	ErrNoSession = errors.New("devicepage: not signed in")
)

// AccountStore is what Accounts keeps in the store.
type AccountStore interface {
	storage.UserStore
	storage.SessionStore
}

// AccountsOptions configure Accounts; the zero value is usable.
type AccountsOptions struct {
	// IdleTimeout ends a session unused this long; zero means 30 minutes.
	IdleTimeout time.Duration
	// SessionLifetime ends a session this long after sign-in, used or
	// not; zero means 12 hours.
	SessionLifetime time.Duration
	// BcryptCost is the cost of new password hashes; zero means 12.
	BcryptCost int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Accounts is the built-in console sign-in. Create it with NewAccounts.
type Accounts struct {
	store AccountStore
	opts  AccountsOptions

	mu        sync.Mutex
	ips       *window        // recent attempts per client IP
	unknown   map[string]int // failures per name that is not a user
	dummyOnce sync.Once
	dummy     []byte // a hash compared against for unknown names, made on first need
}

// NewAccounts returns the built-in sign-in on store.
func NewAccounts(store AccountStore, opts AccountsOptions) *Accounts {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.SessionLifetime <= 0 {
		opts.SessionLifetime = DefaultSessionLifetime
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultBcryptCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Accounts{store: store, opts: opts, ips: newWindow(ipWindow, ""), unknown: map[string]int{}}
}

// CheckUserName reports whether name is acceptable: 1 to 64 bytes of
// letters, digits and . _ - @ +.
func CheckUserName(name string) error {
	if name == "" || len(name) > MaxUserNameLen {
		return fmt.Errorf("devicepage: a user name has 1 to %d characters", MaxUserNameLen)
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-' || r == '@' || r == '+') {
			return fmt.Errorf("devicepage: a user name has only letters, digits and . _ - @ +")
		}
	}
	return nil
}

// CheckPassword reports whether password is acceptable: 10 to 72 bytes of
// valid UTF-8 without control characters.
func CheckPassword(password string) error {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return fmt.Errorf("devicepage: a password has %d to %d bytes", MinPasswordLen, MaxPasswordLen)
	}
	if !utf8.ValidString(password) {
		return errors.New("devicepage: a password must be valid UTF-8")
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return errors.New("devicepage: a password must not contain control characters")
		}
	}
	return nil
}

// AddUser creates a console user; storage.ErrConflict if the name is
// taken.
func (a *Accounts) AddUser(ctx context.Context, name, password string) error {
	if err := CheckUserName(name); err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("devicepage: hash password: %w", err)
	}
	return a.store.CreateUser(ctx, &storage.UserRecord{Name: name, PasswordHash: string(h), CreatedAt: a.opts.Now()})
}

// SetPassword replaces a user's password and lifts any lockout.
func (a *Accounts) SetPassword(ctx context.Context, name, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("devicepage: hash password: %w", err)
	}
	return a.store.SetPassword(ctx, name, string(h))
}

// SignIn checks a name and password for a request from clientIP and, if
// they are right, starts a session and returns its cookie value (to be
// set HttpOnly; the store keeps only its hash). Wrong credentials are
// ErrSignInFailed; too many attempts, from the IP or on the account, are
// ErrThrottled, checked before the password so that a locked account
// cannot be guessed at.
func (a *Accounts) SignIn(ctx context.Context, name, password, clientIP string) (string, error) {
	now := a.opts.Now()
	if !a.allowIP(clientIP, now) {
		return "", ErrThrottled
	}
	if len(name) > MaxUserNameLen || len(password) > MaxPasswordLen {
		return "", ErrSignInFailed
	}
	u, err := a.store.GetUser(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Spend the time a real check takes, and lock unknown names as
		// real ones are, so that neither timing nor lockout tells
		// which names exist.
		a.dummyOnce.Do(func() {
			a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not the password of anyone"), a.opts.BcryptCost)
		})
		bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		if a.failUnknown(name) {
			return "", ErrThrottled
		}
		return "", ErrSignInFailed
	case err != nil:
		return "", fmt.Errorf("devicepage: sign in: %w", err)
	}
	if u.LockedUntil.After(now) {
		return "", ErrThrottled
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		failures := u.Failures + 1
		if err := a.store.RecordSignIn(ctx, name, failures, lockedUntil(failures, now)); err != nil {
			return "", fmt.Errorf("devicepage: sign in: %w", err)
		}
		return "", ErrSignInFailed
	}
	if u.Failures != 0 || !u.LockedUntil.IsZero() {
		if err := a.store.RecordSignIn(ctx, name, 0, time.Time{}); err != nil {
			return "", fmt.Errorf("devicepage: sign in: %w", err)
		}
	}
	cookie := secret.New(sessionPrefix)
	err = a.store.CreateSession(ctx, &storage.SessionRecord{Hash: secret.Hash(cookie), User: name, CreatedAt: now,
		IdleExpiresAt: now.Add(a.opts.IdleTimeout), ExpiresAt: now.Add(a.opts.SessionLifetime)})
	if err != nil {
		return "", fmt.Errorf("devicepage: start session: %w", err)
	}
	return cookie, nil
}

// lockedUntil is when an account with this many consecutive failures may
// try again: no wait below the threshold, then lockoutBase doubling per
// further failure, at most lockoutMax.
func lockedUntil(failures int, now time.Time) time.Time {
	if failures < lockoutThreshold {
		return time.Time{}
	}
	d := lockoutBase
	for i := lockoutThreshold; i < failures && d < lockoutMax; i++ {
		d *= 2
	}
	return now.Add(min(d, lockoutMax))
}

// allowIP records an attempt from ip and reports whether it is within the
// per-IP budget.
func (a *Accounts) allowIP(ip string, now time.Time) bool {
	return a.ips.take(ip, now, ipAttempts)
}

// failUnknown counts a failure on a name that is not a user and reports
// whether that name would now be locked, as a real account would be.
func (a *Accounts) failUnknown(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.unknown) >= maxTracked {
		clear(a.unknown)
	}
	a.unknown[name]++
	return a.unknown[name] > lockoutThreshold
}

// User returns the user of a session cookie and extends the session's idle
// timeout, or ErrNoSession.
func (a *Accounts) User(ctx context.Context, cookie string) (string, error) {
	if !secret.WellFormed(sessionPrefix, cookie) {
		return "", ErrNoSession
	}
	now := a.opts.Now()
	s, err := a.store.GetSession(ctx, secret.Hash(cookie), now)
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrNoSession
	}
	if err != nil {
		return "", fmt.Errorf("devicepage: session: %w", err)
	}
	// Extend the idle timeout, at most once a minute per session.
	if next := now.Add(a.opts.IdleTimeout); next.Sub(s.IdleExpiresAt) > time.Minute {
		if err := a.store.TouchSession(ctx, s.Hash, next); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("devicepage: session: %w", err)
		}
	}
	return s.User, nil
}

// SignOut ends the session of a cookie.
func (a *Accounts) SignOut(ctx context.Context, cookie string) error {
	if !secret.WellFormed(sessionPrefix, cookie) {
		return nil
	}
	return a.store.DeleteSession(ctx, secret.Hash(cookie))
}

// CSRFToken returns the anti-CSRF token of the forms of a session: derived
// from its cookie, which a cross-site page cannot read, so the token needs
// no storage and is the same on every replica.
func CSRFToken(cookie string) string {
	sum := sha256.Sum256([]byte("mcpauth console csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCSRF reports, in constant time, whether token is the CSRF token of
// cookie.
func CheckCSRF(cookie, token string) bool {
	return cookie != "" && secret.Equal(CSRFToken(cookie), token)
}
