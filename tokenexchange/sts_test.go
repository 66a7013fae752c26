package tokenexchange

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// stsCall is a request the test STS received.
type stsCall struct {
	form   url.Values
	header http.Header
	method string
	path   string
	r      *http.Request // for TLS state; its body is read
}

// testSTS is a security token service on httptest: it records each
// request and answers with respond (by default, a fresh Bearer access
// token for 300 seconds, the scope requested).
type testSTS struct {
	*httptest.Server
	calls atomic.Int32
	// gate, when set, is waited on before answering (or until the
	// request's context ends, which canceled then counts).
	gate     chan struct{}
	canceled atomic.Int32

	mu  sync.Mutex
	log []*stsCall
	// respond, when set, writes the answer; otherwise issue does.
	respond func(w http.ResponseWriter, c *stsCall)
}

// setRespond sets how the STS answers from now on.
func (s *testSTS) setRespond(f func(w http.ResponseWriter, c *stsCall)) {
	s.mu.Lock()
	s.respond = f
	s.mu.Unlock()
}

func newSTS(t testing.TB) *testSTS {
	t.Helper()
	s := &testSTS{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *testSTS) serve(w http.ResponseWriter, r *http.Request) {
	n := s.calls.Add(1)
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := &stsCall{form: r.PostForm, header: r.Header.Clone(), method: r.Method, path: r.URL.Path, r: r}
	s.mu.Lock()
	s.log = append(s.log, c)
	respond := s.respond
	s.mu.Unlock()
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-r.Context().Done():
			s.canceled.Add(1)
			return
		}
	}
	if respond != nil {
		respond(w, c)
		return
	}
	issue(w, c, fmt.Sprintf("issued-%d", n))
}

// issue answers a Bearer access token for 300 seconds with the requested
// scope.
func issue(w http.ResponseWriter, c *stsCall, token string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token, "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer",
		"expires_in": 300, "scope": c.form.Get("scope"),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// last returns the last request received.
func (s *testSTS) last(t testing.TB) *stsCall {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.log) == 0 {
		t.Fatal("the STS received no request")
	}
	return s.log[len(s.log)-1]
}

// secretClient is a Client of s authenticating with client_secret_basic.
func secretClient(t testing.TB, s *testSTS, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{TokenURL: s.URL + "/token", ClientID: "mcp-notes", ClientSecret: "s3cret"}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// unsignedJWT is a compact JWS with the given claims and a junk
// signature: enough for what this package reads of a token.
func unsignedJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return b64.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." + b64.EncodeToString(b) + ".c2ln"
}

// formOnly returns f without the keys of client authentication.
func formOnly(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		if !strings.HasPrefix(k, "client_") {
			out[k] = v
		}
	}
	return out
}
