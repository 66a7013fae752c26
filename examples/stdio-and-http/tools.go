package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth/mcpauth"
)

// notes keeps each user's notes in memory, keyed by the caller's subject, so
// that every user sees only their own.
type notes struct {
	mu     sync.Mutex
	byUser map[string][]note
}

type note struct {
	Text    string    `json:"text"`
	Created time.Time `json:"created"`
}

func newNotes() *notes { return &notes{byUser: make(map[string][]note)} }

const maxNotesPerUser = 1000

// notebookOf returns whose notes a call reads and writes: the token's
// subject over HTTP, in the workspace the setup step chose if it ran
// (serve -setup); "local" over stdio, where the process owner is the only
// user.
func notebookOf(ctx context.Context, req mcp.Request) string {
	c, ok := mcpauth.CallerOf(req)
	if !ok {
		return "local"
	}
	if p, ok := profileOf(ctx, req); ok {
		return c.Subject + "/" + p.Workspace
	}
	return c.Subject // no setup step ran for this grant (or -setup is off)
}

type whoamiOut struct {
	Subject  string   `json:"subject"`
	ClientID string   `json:"client_id,omitempty"`
	GrantID  string   `json:"grant_id,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	// DisplayName and Workspace are what the setup step kept with the
	// grant (serve -setup).
	DisplayName string `json:"display_name,omitempty"`
	Workspace   string `json:"workspace,omitempty"`
}

type addNoteIn struct {
	Text string `json:"text" jsonschema:"the note to remember"`
}

type listNotesOut struct {
	Notes []note `json:"notes"`
}

func textResult(v any) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
}

func newMCPServer(n *notes) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "notes-example", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "Returns the caller's subject, client id, scopes and (after the setup step) display name and workspace as JSON."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			out := whoamiOut{Subject: "local"}
			if c, ok := mcpauth.CallerOf(req); ok {
				out = whoamiOut{Subject: c.Subject, ClientID: c.ClientID, GrantID: c.GrantID, Scopes: c.Scopes}
			}
			if p, ok := profileOf(ctx, req); ok {
				out.DisplayName, out.Workspace = p.DisplayName, p.Workspace
			}
			r, err := textResult(out)
			return r, nil, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add_note", Description: "Remembers a short note for the calling user (needs scope notes:write)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in addNoteIn) (*mcp.CallToolResult, any, error) {
			text := strings.TrimSpace(in.Text)
			if text == "" || len(text) > 4000 {
				return nil, nil, fmt.Errorf("text must be 1 to 4000 bytes")
			}
			who := notebookOf(ctx, req)
			n.mu.Lock()
			defer n.mu.Unlock()
			if len(n.byUser[who]) >= maxNotesPerUser {
				return nil, nil, fmt.Errorf("note limit of %d reached", maxNotesPerUser)
			}
			n.byUser[who] = append(n.byUser[who], note{Text: text, Created: time.Now().UTC()})
			r, err := textResult(map[string]int{"count": len(n.byUser[who])})
			return r, nil, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes", Description: "Lists the calling user's notes (needs scope notes:read)."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			who := notebookOf(ctx, req)
			n.mu.Lock()
			out := listNotesOut{Notes: append([]note{}, n.byUser[who]...)}
			n.mu.Unlock()
			r, err := textResult(out)
			return r, nil, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "time", Description: "Returns the server's current time in RFC 3339."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			r, err := textResult(map[string]string{"now": time.Now().UTC().Format(time.RFC3339)})
			return r, nil, err
		})
	return s
}
