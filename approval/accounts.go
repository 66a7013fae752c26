package approval

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-oauth/oauth/internal/ratelimit"
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

// Sign-in throttling (see SignIn). An account is locked after
// lockoutThreshold consecutive failures, for lockoutBase, doubling with
// each further failure up to lockoutMax. Each client network (an IPv4
// address, an IPv6 /64) may try ipAttempts times per ipWindow. A device
// cookie may fail deviceFailures times per deviceWindow.
const (
	lockoutThreshold = 5
	lockoutBase      = time.Minute
	lockoutMax       = time.Hour
	ipAttempts       = 10
	ipWindow         = time.Minute
	deviceFailures   = 5
	deviceWindow     = 15 * time.Minute
)

// dummyHash is what an unknown name's password is compared against at the
// default cost: a bcrypt hash (cost 12) of a random value nobody kept.
// Made ahead, so that no unknown name in a process takes twice as long
// (hashing, then comparing) and stands out.
const dummyHash = "$2a$12$FvqnAuvVX/yfBQVFmYjzL.gafmpJJEJJ4buktldw0YakS/Bf6Uu0q"

// sessionPrefix marks console session cookies.
const sessionPrefix = "mcp_sess_"

// Errors of sign-in. Neither says whether the name exists or which of name
// and password was wrong.
var (
	ErrSignInFailed = errors.New("approval: wrong user name or password")
	ErrThrottled    = errors.New("approval: too many sign-in attempts; wait a few minutes and try again")
	// ErrNoSession is returned for a missing, expired or signed-out session.
	ErrNoSession = errors.New("approval: not signed in")
)

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

// unknownState is what an account would store, for a name that is not
// one.
type unknownState struct {
	failures    int
	lockedUntil time.Time
}

// Accounts is the built-in console sign-in. Create it with NewAccounts.
type Accounts struct {
	store storage.AccountStore
	opts  AccountsOptions

	mu      sync.Mutex
	ips     *ratelimit.Window       // recent attempts per client network
	devices *ratelimit.Window       // recent failures per device cookie
	unknown map[string]unknownState // failures per name that is not a user
	dummy   []byte                  // what an unknown name's password is compared against
}

// NewAccounts returns the built-in sign-in on store.
func NewAccounts(store storage.AccountStore, opts AccountsOptions) *Accounts {
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
	a := &Accounts{store: store, opts: opts, ips: ratelimit.New(ipWindow, ""), devices: ratelimit.New(deviceWindow, ""),
		unknown: map[string]unknownState{}, dummy: []byte(dummyHash)}
	if opts.BcryptCost != DefaultBcryptCost {
		// Made now, not on the first unknown name, which would then take
		// twice as long (hashing, then comparing) and stand out.
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte(secret.New("")), opts.BcryptCost)
	}
	return a
}

// CheckUserName reports whether name is acceptable: 1 to 64 bytes of
// letters, digits and . _ - @ +.
func CheckUserName(name string) error {
	if name == "" || len(name) > MaxUserNameLen {
		return fmt.Errorf("approval: a user name has 1 to %d characters", MaxUserNameLen)
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-' || r == '@' || r == '+') {
			return fmt.Errorf("approval: a user name has only letters, digits and . _ - @ +")
		}
	}
	return nil
}

// CheckPassword reports whether password is acceptable: 10 to 72 bytes of
// valid UTF-8 without control characters.
func CheckPassword(password string) error {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return fmt.Errorf("approval: a password has %d to %d bytes", MinPasswordLen, MaxPasswordLen)
	}
	if !utf8.ValidString(password) {
		return errors.New("approval: a password must be valid UTF-8")
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return errors.New("approval: a password must not contain control characters")
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
		return fmt.Errorf("approval: hash password: %w", err)
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
		return fmt.Errorf("approval: hash password: %w", err)
	}
	return a.store.SetPassword(ctx, name, string(h))
}

// SignInAttempt is one sign-in: the form's name and password, the
// client's address (see ConsoleOptions.ClientIP) and the browser's device
// cookie, if it sent one.
type SignInAttempt struct {
	Name, Password string
	ClientIP       string
	Device         string
}

// SignedIn is a successful sign-in: the session cookie's value, and a
// fresh device cookie's value that marks this browser as one the user
// has signed in from (both to be set HttpOnly; the store keeps only the
// session's hash, and the device cookie needs no storage).
type SignedIn struct {
	Session, Device string
}

// SignIn checks a name and password and, if they are right, starts a
// session. Wrong credentials are ErrSignInFailed; too many attempts are
// ErrThrottled, checked before the password so that a locked account
// cannot be guessed at.
//
// Throttling follows OWASP's device-cookie scheme. An attempt from a
// browser without a valid device cookie for that name counts against the
// client's address (ipAttempts per ipWindow) and against the account
// (locked after lockoutThreshold consecutive failures, from lockoutBase
// doubling to lockoutMax). The count is raised in the store before the
// password is checked, compare-and-set, so concurrent attempts, on any
// number of replicas, each count. A browser the user has signed in from
// before presents its device cookie and is not held back by the account's
// lock or the address limit, only by its own (deviceFailures per
// deviceWindow), so a stranger who keeps the account locked cannot keep
// its owner out. Unknown names are locked the same way, in memory, and
// take the same time, so that neither wording nor lockout nor timing says
// which names exist.
func (a *Accounts) SignIn(ctx context.Context, at SignInAttempt) (*SignedIn, error) {
	now := a.opts.Now()
	if len(at.Name) > MaxUserNameLen || len(at.Password) > MaxPasswordLen {
		return nil, ErrSignInFailed
	}
	ipChecked := false
	if at.Device == "" {
		// No device cookie to look at: the address's limit comes first,
		// before any database read.
		if !a.ips.Take(ratelimit.Network(at.ClientIP), now, ipAttempts) {
			return nil, ErrThrottled
		}
		ipChecked = true
	}
	u, err := a.store.GetUser(ctx, at.Name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("approval: sign in: %w", err)
	}
	if errors.Is(err, storage.ErrNotFound) {
		u = nil
	}
	device := ""
	if u != nil {
		device = deviceID(u, at.Device, now)
	}
	// A device's failure is reserved before the password is checked (and
	// given back on success), so that attempts sent at once cannot all
	// pass; a device cookie that keeps failing is trusted no more.
	if device != "" && !a.devices.Reserve(now, map[string]int{device: deviceFailures}) {
		device = ""
	}
	counted := 0 // the account's count after this attempt, when counted there
	if device == "" {
		if !ipChecked && !a.ips.Take(ratelimit.Network(at.ClientIP), now, ipAttempts) {
			return nil, ErrThrottled
		}
		if counted, err = a.countFailure(ctx, at.Name, u, now); err != nil {
			return nil, err
		}
	}
	if u == nil {
		bcrypt.CompareHashAndPassword(a.dummy, []byte(at.Password))
		return nil, ErrSignInFailed
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(at.Password)) != nil {
		return nil, ErrSignInFailed
	}
	if device != "" {
		a.devices.Refund(device)
	}
	// The right password: clear the count even if the browser has gone
	// meanwhile, or its counted failure would stay.
	if err := a.clearFailures(context.WithoutCancel(ctx), at.Name, counted, u.Failures); err != nil {
		return nil, err
	}
	cookie := secret.New(sessionPrefix)
	err = a.store.CreateSession(ctx, &storage.SessionRecord{Hash: secret.Hash(cookie), User: at.Name, CreatedAt: now,
		IdleExpiresAt: now.Add(a.opts.IdleTimeout), ExpiresAt: now.Add(a.opts.SessionLifetime)})
	if err != nil {
		return nil, fmt.Errorf("approval: start session: %w", err)
	}
	return &SignedIn{Session: cookie, Device: newDeviceCookie(u, now.Add(DeviceCookieLifetime))}, nil
}

// countFailure counts this attempt as a failure before its password is
// checked (clearFailures undoes it on success), or returns ErrThrottled if
// the account is locked. u is nil for a name that is not a user.
func (a *Accounts) countFailure(ctx context.Context, name string, u *storage.UserRecord, now time.Time) (int, error) {
	if u == nil {
		return a.countUnknown(name, now)
	}
	for range 8 {
		if u.LockedUntil.After(now) {
			return 0, ErrThrottled
		}
		next := u.Failures + 1
		err := a.store.RecordSignIn(ctx, name, u.Failures, next, lockedUntil(next, now))
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return 0, fmt.Errorf("approval: sign in: %w", err)
		}
		// Another attempt counted first: read again.
		if u, err = a.store.GetUser(ctx, name); err != nil {
			return 0, fmt.Errorf("approval: sign in: %w", err)
		}
	}
	return 0, ErrThrottled // that many attempts at once is an attack
}

// clearFailures resets the account's count after a right password.
// counted is the count this attempt wrote (0 if it wrote none), stored
// the count read before it.
func (a *Accounts) clearFailures(ctx context.Context, name string, counted, stored int) error {
	prev := counted
	if counted == 0 {
		prev = stored
	}
	for range 8 {
		if prev == 0 {
			return nil
		}
		err := a.store.RecordSignIn(ctx, name, prev, 0, time.Time{})
		if !errors.Is(err, storage.ErrConflict) {
			if err != nil {
				return fmt.Errorf("approval: sign in: %w", err)
			}
			return nil
		}
		u, err := a.store.GetUser(ctx, name)
		if err != nil {
			return fmt.Errorf("approval: sign in: %w", err)
		}
		prev = u.Failures
	}
	return nil // failures keep arriving; the next success clears them
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

// countUnknown does for a name that is not a user what countFailure does
// for an account: the same count, lock and wording, kept in memory.
func (a *Accounts) countUnknown(name string, now time.Time) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.unknown[name]
	if st.lockedUntil.After(now) {
		return 0, ErrThrottled
	}
	if len(a.unknown) >= ratelimit.MaxTracked {
		clear(a.unknown)
	}
	st.failures++
	st.lockedUntil = lockedUntil(st.failures, now)
	a.unknown[name] = st
	return st.failures, nil
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
		return "", fmt.Errorf("approval: session: %w", err)
	}
	// Extend the idle timeout, at most once a minute per session.
	if next := now.Add(a.opts.IdleTimeout); next.Sub(s.IdleExpiresAt) > time.Minute {
		if err := a.store.TouchSession(ctx, s.Hash, next); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("approval: session: %w", err)
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

// devicePrefix marks device cookies.
const devicePrefix = "mcp_dev_"

// DeviceCookieLifetime is how long a browser stays known as one its user
// signed in from (see SignIn); the cookie carries its expiry, under its
// MAC, so the server enforces it.
const DeviceCookieLifetime = 180 * 24 * time.Hour

// newDeviceCookie returns a device cookie for u, valid until expires: a
// random identifier, the expiry, and their MAC under a key derived from
// u's password hash, so that it needs no storage, is the same on every
// replica, and is void once the password changes.
func newDeviceCookie(u *storage.UserRecord, expires time.Time) string {
	body := secret.New("") + "." + strconv.FormatInt(expires.Unix(), 10)
	return devicePrefix + body + "." + deviceMAC(u, body)
}

// deviceID returns the identifier of a device cookie of u valid at now,
// or "".
func deviceID(u *storage.UserRecord, cookie string, now time.Time) string {
	rest, ok := strings.CutPrefix(cookie, devicePrefix)
	if !ok || len(rest) > 160 {
		return ""
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 || !hmac.Equal([]byte(rest[i+1:]), []byte(deviceMAC(u, rest[:i]))) {
		return ""
	}
	id, exp, ok := strings.Cut(rest[:i], ".")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if !ok || id == "" || err != nil || !now.Before(time.Unix(unix, 0)) {
		return ""
	}
	return id
}

func deviceMAC(u *storage.UserRecord, body string) string {
	key := sha256.Sum256([]byte("mcpauth device cookie\x00" + u.PasswordHash))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(u.Name + "\x00" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
