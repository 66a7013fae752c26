package mcpauth

import (
	"context"
	"errors"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/cimd"
	"github.com/mcp-oauth/oauth/internal/clientassert"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const ClientAssertionType = clientassert.AssertionType

// KeyFetcher fetches a client's jwks_uri document (RFC 7591 §2): an https
// GET through the same guard as Client ID Metadata Documents (public
// addresses only, no redirects, bounded time and size).
type KeyFetcher func(ctx context.Context, url string, maxBytes int64) ([]byte, error)

// newClientAssertions returns the verifier of private_key_jwt assertions
// for this server: aud is the token endpoint, with or without a trailing
// slash, or the issuer.
func (s *AuthorizationServer) newClientAssertions() (*clientassert.Verifier, error) {
	token, iss := s.url(PathToken), strings.TrimSuffix(s.opts.Issuer, "/")
	return clientassert.New(clientassert.Options{
		Audiences: []string{token, token + "/", iss, iss + "/"},
		Fetch:     s.opts.KeyFetcher,
	})
}

// keysOf is the KeySource of client's registered keys.
func keysOf(c *oauth.Client) clientassert.KeySource {
	return clientassert.KeySource{JWKS: []byte(c.JWKS), JWKSURI: c.JWKSURI}
}

// verifyClientAssertion authenticates client by a private_key_jwt
// assertion (RFC 7523 §2.2 and §3; see internal/clientassert): signed by
// one of its keys with an allowed algorithm bound to that key; iss and
// sub its client_id; aud this server; exp present, not past and at most
// five minutes ahead; nbf and iat not in the future; jti never seen
// before for this client. Failures are invalid_client (a full replay
// memory is temporarily_unavailable), with a description that never
// quotes the assertion.
func (s *AuthorizationServer) verifyClientAssertion(ctx context.Context, client *oauth.Client, typ, assertion string) *oauth.Error {
	// A metadata-document client is used as a public client, but one whose
	// document names keys (ChatGPT's prefers private_key_jwt and lists
	// none) may authenticate with them, and its assertion is then checked.
	documentKeys := cimd.IsClientIDURL(client.ID) && (client.JWKS != "" || client.JWKSURI != "")
	if client.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT && !documentKeys {
		return oauth.ErrInvalidClient.WithDescription("client assertion refused: the client is not registered for private_key_jwt")
	}
	err := s.assertions.Verify(ctx, client.ID, keysOf(client), typ, assertion)
	if err == nil {
		return nil
	}
	s.log.Info("mcpauth: client assertion refused", "client_id", client.ID, "reason", err)
	if errors.Is(err, clientassert.ErrReplayCacheFull) {
		return oauth.ErrTemporarilyUnavailable.WithDescription("too many assertions in flight; try again")
	}
	desc := "client assertion refused"
	var e *clientassert.Error
	if errors.As(err, &e) && e.Detail != "" {
		desc += ": " + e.Detail
	}
	return oauth.ErrInvalidClient.WithDescription(desc)
}
