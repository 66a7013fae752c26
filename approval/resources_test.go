package approval_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcp-oauth/oauth/approval"
)

// TestResourceNamed: with Resources, the waiting page and the console's
// confirmation say which resource a request is for, by name, and describe
// its scopes in that resource's words, not the options' shared ones.
func TestResourceNamed(t *testing.T) {
	resources := map[string]approval.ResourceInfo{
		"https://as.example/mcp":       {Name: "Calendar <beta>", ScopeDescriptions: map[string]string{"mcp": "Read and add events"}},
		"https://as.example/notes/mcp": {Name: "Notes"},
	}
	shared := map[string]string{"mcp": "Use everything"}
	want := []string{`<dd data-resource><strong>Calendar &lt;beta&gt;</strong> https://as.example/mcp</dd>`, "Read and add events"}

	a := &fakeApprover{}
	a.add(tabCode, tabHandle, tabRedirect) // a request for https://as.example/mcp
	page := approval.NewPage(a, approval.PageOptions{Resources: resources, ScopeDescriptions: shared})
	w := httptest.NewRecorder()
	page.ServeHTTP(w, httptest.NewRequest("GET", tabURL, nil))
	for _, s := range want {
		if w.Code != 200 || !strings.Contains(w.Body.String(), s) {
			t.Errorf("waiting page lacks %q: %d %s", s, w.Code, w.Body)
		}
	}
	if strings.Contains(w.Body.String(), "Use everything") {
		t.Error("the waiting page used the shared scope description for a resource with its own")
	}

	c := approval.NewConsole(a, "/console", approval.ConsoleOptions{Resources: resources, ScopeDescriptions: shared,
		Identity: approval.IdentityFunc(func(*http.Request) (string, error) { return "owner", nil })})
	srv := httptest.NewServer(c)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/console/approve?user_code=" + tabCode)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range want {
		if resp.StatusCode != 200 || !strings.Contains(string(b), s) {
			t.Errorf("confirmation lacks %q: %d %s", s, resp.StatusCode, b)
		}
	}

	// Without Resources, the pages show the URL alone and the shared words.
	page = approval.NewPage(a, approval.PageOptions{ScopeDescriptions: shared})
	w = httptest.NewRecorder()
	page.ServeHTTP(w, httptest.NewRequest("GET", tabURL, nil))
	if !strings.Contains(w.Body.String(), `<dd data-resource>https://as.example/mcp</dd>`) || !strings.Contains(w.Body.String(), "Use everything") {
		t.Errorf("waiting page without Resources: %s", w.Body)
	}
}
