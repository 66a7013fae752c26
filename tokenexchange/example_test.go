package tokenexchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/tokenexchange"
)

// A tool handler exchanges its caller's token for one of the calendar
// API and calls that API with it. The STS is a stand-in on httptest;
// the tool is called directly with the header the streamable HTTP
// transport would pass on.
func ExampleClient_Exchange() {
	sts := standInSTS()
	defer sts.Close()

	te, err := tokenexchange.New(tokenexchange.Options{
		TokenURL:     sts.URL + "/oauth/token",
		ClientID:     "notes-mcp",
		ClientSecret: "notes-secret",
	})
	if err != nil {
		log.Fatal(err)
	}
	type args struct{ Day string }
	listEvents := func(ctx context.Context, req *mcp.CallToolRequest, in args) (*mcp.CallToolResult, any, error) {
		subject, ok := tokenexchange.SubjectFromRequest(req)
		if !ok {
			return nil, nil, errors.New("no caller token")
		}
		tok, err := te.Exchange(ctx, &tokenexchange.Request{
			SubjectToken: subject,
			Audience:     []string{"calendar-api"},
			Scopes:       []string{"calendar.read"},
		})
		if err != nil {
			return nil, nil, err
		}
		// GET https://calendar.example.com/events?day=... with
		// "Authorization: Bearer " + tok.AccessToken
		text := fmt.Sprintf("would call the calendar API for %s with a %s token for %v", in.Day, tok.TokenType, tok.Scopes)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	}
	// srv := mcp.NewServer(...); mcp.AddTool(srv, &mcp.Tool{Name: "list_events"}, listEvents)

	req := &mcp.CallToolRequest{Extra: &mcp.RequestExtra{Header: http.Header{"Authorization": {"Bearer caller-token"}}}}
	res, _, err := listEvents(context.Background(), req, args{Day: "2030-01-02"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)

	// The STS's refusals are typed.
	_, err = te.Exchange(context.Background(), &tokenexchange.Request{SubjectToken: "caller-token", Audience: []string{"payroll-api"}})
	var e *tokenexchange.Error
	fmt.Println(errors.Is(err, oauth.ErrInvalidTarget), errors.As(err, &e) && e.Status == 400)
	// Output:
	// would call the calendar API for 2030-01-02 with a Bearer token for [calendar.read]
	// true true
}

// standInSTS exchanges "caller-token" for a calendar-api token, when
// notes-mcp authenticates with its secret, and refuses other audiences.
func standInSTS() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		id, secret, _ := r.BasicAuth()
		switch {
		case id != "notes-mcp" || secret != "notes-secret":
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		case r.PostFormValue("grant_type") != tokenexchange.GrantType || r.PostFormValue("subject_token") != "caller-token":
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		case r.PostFormValue("audience") != "calendar-api":
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_target", "error_description": "no such audience"})
		default:
			json.NewEncoder(w).Encode(map[string]any{
				"access_token":      "calendar-token",
				"issued_token_type": tokenexchange.TokenTypeAccessToken,
				"token_type":        "Bearer",
				"expires_in":        300,
				"scope":             r.PostFormValue("scope"),
			})
		}
	}))
}
