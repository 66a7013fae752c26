// Package oidctest runs a real OpenID Provider in-process for tests, in
// the manner of net/http/httptest: zitadel/oidc's op package (a
// production OpenID Provider) with its example storage and login page, on
// a loopback listener. It is the upstream identity provider of the
// federation tests: discovery, JWKS, authorization code with PKCE and
// nonce, refresh, revocation and introspection are the provider's own.
package oidctest

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// The example storage's first user, who signs in on the login page.
const (
	// Username is the login name, for host 127.0.0.1.
	Username = "test-user@127.0.0.1"
	// Password is the user's password.
	Password = "verysecure"
	// Subject is the user's OIDC sub.
	Subject = "id1"
	// Email is the user's (verified) e-mail address.
	Email = "test-user@zitadel.ch"
)

// Server is a running OpenID Provider.
type Server struct {
	// Issuer is the provider's issuer identifier, "http://127.0.0.1:PORT/".
	Issuer string
	srv    *httptest.Server
}

// Client is a client registered with the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// New starts a provider for t that knows clients (confidential web
// clients with client_secret_basic, code and refresh_token grants); it
// stops when the test ends.
func New(t testing.TB, clients ...Client) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	reg := make(map[string]*storage.Client, len(clients))
	for _, c := range clients {
		reg[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer), reg)
	// The example server logs every request to the default logger; the
	// tests' output has no use for it.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: router}}
	srv.Start()
	t.Cleanup(srv.Close)
	return &Server{Issuer: issuer, srv: srv}
}
