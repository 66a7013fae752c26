package provider

import (
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// StaticClient is a client configured in code (Options.Clients), such as
// a service that authenticates with a secret and uses the client
// credentials grant (RFC 6749 §4.4, MCP's SEP-1046), or a resource server
// that exchanges the tokens it receives (RFC 8693). Its metadata is that
// of RFC 7591 §2: GrantTypes says which grants it may use, Scope the
// scopes it may ask for (space-separated; empty means any the server
// offers), TokenEndpointAuthMethod how it authenticates (empty means
// client_secret_basic when Secret is set).
type StaticClient struct {
	oauthex.ClientRegistrationMetadata
	// ID is its client_id: 1 to 256 bytes, not an https URL (those name
	// metadata documents).
	ID string
	// Secret is its client secret in plain text, at least 32 bytes; the
	// Provider keeps only its hash. Empty for a client that authenticates
	// with private_key_jwt (RFC 7523 §2.2: JWKS or JWKSURI set) or none.
	Secret string
}

// minStaticSecret is the shortest secret a StaticClient may have: 256 bits
// if it is random text.
const minStaticSecret = 32

// staticClients validates Options.Clients and returns them by ID.
func staticClients(list []StaticClient) (map[string]*oauth.Client, error) {
	out := make(map[string]*oauth.Client, len(list))
	for i, sc := range list {
		where := fmt.Sprintf("provider: Clients[%d] (%q)", i, sc.ID)
		switch {
		case sc.ID == "" || len(sc.ID) > 256:
			return nil, fmt.Errorf("%s: ID must be 1 to 256 bytes", where)
		case strings.HasPrefix(sc.ID, "https://"):
			return nil, fmt.Errorf("%s: an https ID names a metadata document", where)
		case out[sc.ID] != nil:
			return nil, fmt.Errorf("%s: ID is given twice", where)
		case len(sc.GrantTypes) == 0:
			return nil, fmt.Errorf("%s: GrantTypes is empty", where)
		}
		c := &oauth.Client{ClientRegistrationMetadata: sc.ClientRegistrationMetadata, ID: sc.ID}
		c.GrantTypes = slices.Clone(sc.GrantTypes)
		c.RedirectURIs = slices.Clone(sc.RedirectURIs)
		keys := len(sc.JWKS) > 0 || sc.JWKSURI != ""
		if c.TokenEndpointAuthMethod == "" {
			switch {
			case sc.Secret != "":
				c.TokenEndpointAuthMethod = oauth.AuthMethodClientSecretBasic
			case keys:
				c.TokenEndpointAuthMethod = oauth.AuthMethodPrivateKeyJWT
			default:
				c.TokenEndpointAuthMethod = oauth.AuthMethodNone
			}
		}
		switch m := c.TokenEndpointAuthMethod; {
		case m == oauth.AuthMethodClientSecretBasic || m == oauth.AuthMethodClientSecretPost:
			if len(sc.Secret) < minStaticSecret {
				return nil, fmt.Errorf("%s: a Secret of at least %d bytes is required", where, minStaticSecret)
			}
			c.SecretHash = secret.Hash(sc.Secret)
		case m == oauth.AuthMethodPrivateKeyJWT:
			if !keys || sc.Secret != "" {
				return nil, fmt.Errorf("%s: private_key_jwt needs JWKS or JWKSURI and no Secret", where)
			}
		case m == oauth.AuthMethodNone:
			if sc.Secret != "" {
				return nil, fmt.Errorf("%s: a public client has no Secret", where)
			}
		default:
			return nil, fmt.Errorf("%s: unsupported TokenEndpointAuthMethod %q", where, m)
		}
		for _, gt := range c.GrantTypes {
			machine := gt == oauth.GrantTypeClientCredentials || gt == oauth.GrantTypeTokenExchange
			if machine && c.Public() {
				return nil, fmt.Errorf("%s: %s needs a confidential client", where, gt)
			}
		}
		out[sc.ID] = c
	}
	return out, nil
}
