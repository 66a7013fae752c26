package tokenexchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mcp-oauth/oauth/internal/tokencache"
)

// Exchange exchanges req.SubjectToken for a token (RFC 8693 §2): from the
// cache if an identical request got one that is still fresh, else from
// the STS. It returns the caller's own copy of the token, or an error:
//
//   - a local one, before any I/O, for a request that breaks RFC 8693
//     §2.1 (no SubjectToken, a Resource that is not an absolute URI, a
//     scope that is not a scope-token, ...);
//   - an *Error for an error response of the STS (RFC 8693 §2.2.2);
//   - a *ResponseError for an answer that is neither;
//   - a transport error, or ctx's error, wrapped.
//
// The cache: a token is served until its ExpiresAt less
// Options.ExpiryMargin, and never past the exp of the subject token (or
// of the actor token) when that token is a JWT, whose payload is read
// without checking its signature for this purpose alone. A token without
// a known expiry is not cached. Errors are never cached: the next call
// asks again. Identical requests in flight at once share one call to the
// STS and its answer (single-flight); that call goes on while any of
// them still waits, and is canceled when all have given up. A cached
// token with a RefreshToken hands the same refresh token to every caller
// it serves; turn the cache off if the STS rotates them.
func (c *Client) Exchange(ctx context.Context, req *Request) (*Token, error) {
	r, err := req.normalize()
	if err != nil {
		return nil, err
	}
	k := r.key()
	if t := c.cached(k); t != nil {
		c.log.DebugContext(ctx, "tokenexchange: cache hit", "subject_sha256", fingerprint(r.SubjectToken))
		return t, nil
	}
	c.mu.Lock()
	f := c.flights[k]
	if f == nil {
		// A flight may have landed since the look-up above.
		if t := c.cached(k); t != nil {
			c.mu.Unlock()
			return t, nil
		}
		// The call outlives whichever caller started it, but keeps its
		// context's values (trace spans, for instance).
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[k] = f
		go c.fly(fctx, k, f, r)
	}
	f.waiters++
	c.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return f.tok.clone(), nil
	case <-ctx.Done():
		c.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			if c.flights[k] == f {
				delete(c.flights, k)
			}
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("tokenexchange: %w", ctx.Err())
	}
}

// flight is one call to the STS that identical requests wait for.
type flight struct {
	done    chan struct{} // closed when tok or err is set
	tok     *Token
	err     error
	cancel  context.CancelFunc
	waiters int // guarded by Client.mu
}

func (c *Client) cached(k flightKey) *Token {
	if c.cache == nil {
		return nil
	}
	if t, ok := c.cache.Get(tokencache.Key(k), c.now().UnixNano()); ok {
		return t.clone()
	}
	return nil
}

// fly makes the call of f, caches a success and lands f.
func (c *Client) fly(ctx context.Context, k flightKey, f *flight, r *Request) {
	defer f.cancel()
	tok, err := c.exchange(ctx, r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.cache != nil {
		if until := c.cacheUntil(r, tok); !until.IsZero() {
			c.cache.Put(tokencache.Key(k), tok.clone(), until.UnixNano(), c.now().UnixNano())
		}
	}
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	f.tok, f.err = tok, err
	close(f.done)
}

// cacheUntil is how long tok, issued for r, may be served from the
// cache; zero means not at all.
func (c *Client) cacheUntil(r *Request, tok *Token) time.Time {
	if tok.ExpiresAt.IsZero() {
		return time.Time{}
	}
	until := tok.ExpiresAt.Add(-c.margin)
	for _, t := range []string{r.SubjectToken, r.ActorToken} {
		if exp, ok := jwtExpiry(t); ok && exp.Before(until) {
			until = exp
		}
	}
	return until
}

// exchange posts r to the token endpoint and reads the answer.
func (c *Client) exchange(ctx context.Context, r *Request) (*Token, error) {
	fp := fingerprint(r.SubjectToken)
	tok, err := c.post(ctx, r)
	if err != nil {
		level := slog.LevelWarn
		var e *Error
		if errors.As(err, &e) && e.Code != "invalid_client" && e.Code != "unauthorized_client" && e.Code != "unsupported_grant_type" {
			// A refusal of this request, not of this client's setup.
			level = slog.LevelDebug
		}
		c.log.Log(ctx, level, "tokenexchange: exchange failed", "subject_sha256", fp, "err", err.Error())
		return nil, err
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.DebugContext(ctx, "tokenexchange: token issued", "subject_sha256", fp,
			"audience", r.Audience, "resource", r.Resource, "issued_token_type", tok.IssuedTokenType, "expires_at", tok.ExpiresAt)
	}
	return tok, nil
}

func (c *Client) post(ctx context.Context, r *Request) (*Token, error) {
	ep, err := c.Endpoint(ctx)
	if err != nil {
		return nil, err
	}
	form := r.form()
	h := http.Header{}
	if err := c.auth.authenticate(form, h, ep, c.now()); err != nil {
		return nil, fmt.Errorf("tokenexchange: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, ep, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("tokenexchange: %w", err)
	}
	for name, v := range h {
		hr.Header[name] = v
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Accept", "application/json")
	resp, err := c.noRedirect.Do(hr)
	if err != nil {
		// A *url.Error names the endpoint; the tokens are in the body.
		return nil, fmt.Errorf("tokenexchange: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tokenexchange: read the answer of %s: %w", ep, err)
	}
	if len(body) > MaxResponseBytes {
		return nil, &ResponseError{Status: resp.StatusCode, Reason: fmt.Sprintf("over %d bytes", MaxResponseBytes)}
	}
	return parseResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body, r, c.now())
}
