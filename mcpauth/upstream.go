package mcpauth

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
)

// PathUpstream is where Options.Upstream's sign-in is served: /login,
// /callback (the redirect URI to register at the upstream) and /logout.
const PathUpstream = "/upstream"

// setupUpstream wires Options.Upstream into the options before the
// Provider and the console are built: the console signs in through it,
// the approval page links to it, and grants that end revoke their
// upstream tokens.
func setupUpstream(opts *Options, issuerPath string, https bool, log *slog.Logger) error {
	up := opts.Upstream
	if up == nil {
		return nil
	}
	if opts.Console.Identity != nil || opts.Console.Accounts != nil {
		return errors.New("mcpauth: Options.Upstream signs owners in; leave Console.Identity and Console.Accounts empty")
	}
	up.SetRedirectURL(strings.TrimSuffix(opts.Issuer, "/") + PathUpstream + "/callback")
	up.SetSecure(https)
	up.SetDefaultReturn(issuerPath + PathConsole + "/")
	opts.Console.Identity = up
	if opts.Console.SignInURL == "" {
		opts.Console.SignInURL = issuerPath + PathUpstream + "/login"
	}
	if opts.Console.SignInLabel == "" {
		opts.Console.SignInLabel = "Sign in with " + up.Name()
	}
	if opts.Provider != nil {
		log.Warn("mcpauth: with Options.Provider, the upstream tokens kept with grants are not revoked at the upstream when a grant ends (call upstream.IdP.Revoke from the Provider)")
		return nil
	}
	next := opts.ProviderOptions.OnGrantEnd
	opts.ProviderOptions.OnGrantEnd = func(ctx context.Context, e *oauth.GrantEnd) {
		if err := up.Revoke(ctx, e.Values); err != nil {
			log.Error("mcpauth: revoke the upstream token of an ended grant", "grant_id", e.Grant.ID, "err", err)
		}
		if next != nil {
			next(ctx, e)
		}
	}
	return nil
}

// UpstreamToken returns the upstream identity provider's access token of
// the MCP request's caller, kept with its grant when the owner approved
// it after signing in through Options.Upstream, refreshed first if it
// has expired: for a tool that calls the upstream's API as the user.
// upstream.ErrNoUpstreamToken for a grant approved otherwise.
func UpstreamToken(ctx context.Context, req mcp.Request) (*oauth2.Token, error) {
	a, err := accessOf(req)
	if err != nil {
		return nil, err
	}
	if a.up == nil {
		return nil, errors.New("mcpauth: UpstreamToken needs Options.Upstream")
	}
	return a.up.Token(ctx, a.gd, a.grantID)
}
