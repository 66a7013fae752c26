package extauth

import (
	"context"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
)

// ByShape returns a token verifier that sends each token, by its shape
// alone, to exactly one of two verifiers, so that a server can take both
// its identity provider's JWTs and its own API keys on one endpoint:
//
//   - a token that starts with one of apiKeyPrefixes goes to apiKey (the
//     host's check, such as a lookup of the key's hash);
//   - else a token shaped as a JWS compact serialization (LooksLikeJWT)
//     goes to jwt (typically (*Verifier).Verify);
//   - anything else is refused with ErrMalformed, and so is a shape
//     whose verifier is nil.
//
// The shapes do not overlap, so an API key never reaches the JWT
// verifier (nor the issuer's introspection endpoint) and a JWT never
// reaches the API-key check. With no prefixes, every token that is not
// JWT-shaped goes to apiKey, which must then refuse what it does not
// know. Both verifiers and the result have the shape of
// mcpauth.TokenVerifier; apiKey must return an AccessToken with ExpiresAt
// set (mcpauth.RequireBearer refuses one without), for instance a minute
// from now, and an error wrapping oauth.ErrInvalidToken for a bad key.
// Pass (*Verifier).Verify itself as jwt, since it counts and logs.
func ByShape(jwt, apiKey func(ctx context.Context, token string) (*oauth.AccessToken, error), apiKeyPrefixes ...string) func(ctx context.Context, token string) (*oauth.AccessToken, error) {
	prefixes := make([]string, 0, len(apiKeyPrefixes))
	for _, p := range apiKeyPrefixes {
		if p != "" {
			prefixes = append(prefixes, p)
		}
	}
	isAPIKey := func(tok string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(tok, p) {
				return true
			}
		}
		return false
	}
	return func(ctx context.Context, token string) (*oauth.AccessToken, error) {
		var verify func(context.Context, string) (*oauth.AccessToken, error)
		switch {
		case isAPIKey(token):
			verify = apiKey
		case LooksLikeJWT(token):
			verify = jwt
		case len(prefixes) == 0:
			verify = apiKey
		}
		if verify == nil {
			return nil, reject(ErrMalformed, "the token is neither an API key nor a JWT")
		}
		return verify(ctx, token)
	}
}
