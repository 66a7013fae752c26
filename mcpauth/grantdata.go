package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/upstream"
)

// grantAccess is what RequireBearer puts in auth.TokenInfo.Extra for the
// grant-data functions: where the data is and whose it is.
type grantAccess struct {
	gd      oauth.GrantDataProvider
	grantID string
	up      *upstream.IdP // Options.Upstream, for UpstreamToken
}

// ErrNoGrantAccess is returned by the grant-data functions for a request
// that did not pass RequireBearer (or Wrap) with a Provider that keeps
// grant data (an oauth.GrantDataProvider).
var ErrNoGrantAccess = errors.New("mcpauth: no grant data for this request (not behind Wrap or RequireBearer with a GrantDataProvider)")

func accessOf(req mcp.Request) (*grantAccess, error) {
	if req == nil || req.GetExtra() == nil {
		return nil, ErrNoGrantAccess
	}
	return accessOfTokenInfo(req.GetExtra().TokenInfo)
}

func accessOfTokenInfo(ti *auth.TokenInfo) (*grantAccess, error) {
	if ti == nil {
		return nil, ErrNoGrantAccess
	}
	a, _ := ti.Extra[extraGrantData].(*grantAccess)
	if a == nil || a.grantID == "" {
		return nil, ErrNoGrantAccess
	}
	return a, nil
}

// GrantData returns the value name kept with the grant of the MCP request's
// caller (what its setup step stored, or a tool since), decoded from JSON
// into a T. It reads the store once (no read is added to the bearer check
// of requests that do not call it); the error is oauth.ErrNoGrantData
// when the grant has no such value (never set, expired, deleted, or the
// grant ended), ErrNoGrantAccess outside an authenticated request.
//
//	ws, err := mcpauth.GrantData[Workspace](ctx, req, "workspace")
func GrantData[T any](ctx context.Context, req mcp.Request, name string) (T, error) {
	var v T
	a, err := accessOf(req)
	if err != nil {
		return v, err
	}
	b, err := a.gd.GrantData(ctx, a.grantID, name)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("mcpauth: grant data %q does not decode into %T: %w", name, v, err)
	}
	return v, nil
}

// SetGrantData stores v, as JSON, under name with the grant of the MCP
// request's caller, replacing any value of that name; ttl, when positive,
// bounds its life. Errors: oauth.ErrGrantNotActive when the grant ended,
// oauth.ErrGrantDataLimit over the Provider's limits (16 KiB per value and
// 16 values per grant by default).
func SetGrantData(ctx context.Context, req mcp.Request, name string, v any, ttl time.Duration) error {
	a, err := accessOf(req)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("mcpauth: grant data %q does not encode: %w", name, err)
	}
	return a.gd.SetGrantData(ctx, a.grantID, name, b, ttl)
}

// DeleteGrantData deletes the value name of the grant of the MCP request's
// caller; deleting an absent value is not an error.
func DeleteGrantData(ctx context.Context, req mcp.Request, name string) error {
	a, err := accessOf(req)
	if err != nil {
		return err
	}
	return a.gd.DeleteGrantData(ctx, a.grantID, name)
}

// JSONValue returns a grant value holding v as JSON, the form GrantData
// reads: for a setup step's oauth.GrantSetup.Values.
func JSONValue(name string, v any, ttl time.Duration) (oauth.GrantValue, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return oauth.GrantValue{}, fmt.Errorf("mcpauth: grant value %q does not encode: %w", name, err)
	}
	return oauth.GrantValue{Name: name, Value: b, TTL: ttl}, nil
}
