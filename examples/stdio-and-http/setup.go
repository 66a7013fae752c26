package main

import (
	"context"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/mcpauth"
)

// The optional setup step (serve -setup): after the owner approves a
// connection, the user's browser asks for a display name and a workspace
// before it returns to the client. Both are kept with the grant, sealed,
// and the tools read them: whoami shows them, and notes are kept per
// workspace.

// profile is what the setup step keeps with a grant.
type profile struct {
	DisplayName string `json:"display_name"`
	Workspace   string `json:"workspace"`
}

// profileKey names the grant value that holds the profile.
const profileKey = "profile"

// workspaces are the choices the setup step offers.
var workspaces = []string{"personal", "team-alpha", "team-beta"}

//go:embed setup.html
var setupFiles embed.FS

var setupPage = template.Must(template.ParseFS(setupFiles, "setup.html"))

// setupStep is the approval page's setup step: it shows the form, shows it
// again with the problem for a wrong value, and completes with the
// profile as grant data and the workspace as a token claim.
func setupStep() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := approval.StepRequest(r)
		in := profile{Workspace: workspaces[0]}
		problem := ""
		if r.Method == http.MethodPost {
			in = profile{DisplayName: strings.TrimSpace(r.PostFormValue("display_name")), Workspace: r.PostFormValue("workspace")}
			if problem = in.check(); problem == "" {
				v, err := mcpauth.JSONValue(profileKey, in, 0)
				if err != nil {
					http.Error(w, "internal error", http.StatusInternalServerError)
					return
				}
				approval.Complete(r, &oauth.GrantSetup{Values: []oauth.GrantValue{v}, Claims: map[string]any{"workspace": in.Workspace}})
				return
			}
		}
		client := "An application"
		if p.Client != nil && p.Client.ClientName != "" {
			client = p.Client.ClientName
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if problem != "" {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
		setupPage.Execute(w, map[string]any{
			"Fields": approval.StepFields(r), "Client": client, "Problem": problem,
			"Profile": in, "Workspaces": workspaces,
		})
	})
}

// check returns what is wrong with a submitted profile, or "".
func (p profile) check() string {
	switch n := utf8.RuneCountInString(p.DisplayName); {
	case n == 0:
		return "Enter a display name."
	case n > 64 || !utf8.ValidString(p.DisplayName):
		return "The display name must be at most 64 characters."
	}
	if !slices.Contains(workspaces, p.Workspace) {
		return "Choose one of the workspaces."
	}
	return ""
}

// profileOf returns the caller's profile, if its grant has one. A failure
// to read it (not its absence) is logged, and the caller then works in
// its own notebook without a workspace.
func profileOf(ctx context.Context, req mcp.Request) (profile, bool) {
	p, err := mcpauth.GrantData[profile](ctx, req, profileKey)
	if err != nil && !errors.Is(err, oauth.ErrNoGrantData) && !errors.Is(err, mcpauth.ErrNoGrantAccess) {
		slog.Default().Error("read the setup profile", "err", err)
	}
	return p, err == nil
}

// readKEK reads a key-encryption key: 64 hex digits (32 bytes), from a file
// (serve -kek-file). Make one with: openssl rand -hex 32 > kek.hex
func readKEK(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read -kek-file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, errors.New("-kek-file must hold 64 hex digits (32 bytes); make one with: openssl rand -hex 32")
	}
	return k, nil
}
