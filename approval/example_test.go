package approval_test

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
)

// A host application's sign-in for the console: here a header that a
// proxy in front of the console sets (and strips from what clients send).
func ExampleIdentityFunc() {
	opts := approval.ConsoleOptions{
		Identity: approval.IdentityFunc(func(r *http.Request) (string, error) {
			return r.Header.Get("X-Forwarded-User"), nil
		}),
		SignInURL: "/oauth2/sign_in",
	}
	r := httptest.NewRequest("GET", "/console", nil)
	r.Header.Set("X-Forwarded-User", "alice")
	user, _ := opts.Identity.ConsoleUser(r)
	fmt.Println(user)
	// Output: alice
}

// A setup step that asks for an API key, with its own form of
// html/template. A key that does not do is answered by rendering the form
// again, with the error, without calling Complete; the right one completes
// the step with the key kept with the grant and a claim for its access
// tokens. The same handler serves the authorize tab (PageOptions.Step)
// and, for device requests, the console (ConsoleOptions.Step).
func ExampleComplete() {
	form := template.Must(template.New("step").Parse(`<form method="post">{{.Fields}}
{{with .Error}}<p class="error">{{.}}</p>{{end}}
<label>API key for {{.Client}} <input name="api_key"></label> <button>Save</button></form>`))
	step := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var problem string
		if r.Method == http.MethodPost {
			if key := r.PostForm.Get("api_key"); strings.HasPrefix(key, "sk-") {
				approval.Complete(r, &oauth.GrantSetup{
					Values: []oauth.GrantValue{{Name: "api_key", Value: []byte(key)}},
					Claims: map[string]any{"plan": "pro"},
				})
				return // and write nothing: the tab returns to the client
			}
			problem = "That is not an API key."
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		form.Execute(w, map[string]any{
			"Fields": approval.StepFields(r), // StepField and the CSRF token
			"Error":  problem,
			"Client": approval.StepRequest(r).Client.ClientName,
		})
	})

	approver := approvedRequest() // an oauth.Approver, here a test double
	page := approval.NewPage(approver, approval.PageOptions{Step: step})

	status, body := visit(page, "GET", nil)
	fmt.Println("the tab:", status, firstLine(body, "<label>"))
	status, body = visit(page, "POST", hiddenFields(body, "api_key", "hunter2"))
	fmt.Println("a wrong key:", status, firstLine(body, `<p class="error">`))
	status, body = visit(page, "POST", hiddenFields(body, "api_key", "sk-123"))
	fmt.Println("the right key:", status, firstLine(body, `<meta http-equiv="refresh"`))
	setup := approver.completions()[0].Setup
	fmt.Printf("kept %s=%s, claims %v\n", setup.Values[0].Name, setup.Values[0].Value, setup.Claims)
	// Output:
	// the tab: 200 <label>API key for Notes &lt;CLI&gt; <input name="api_key"></label> <button>Save</button></form>
	// a wrong key: 200 <p class="error">That is not an API key.</p>
	// the right key: 200 <meta http-equiv="refresh" content="0;url=https://client.example/cb?code=c0de&amp;state=xyz">
	// kept api_key=sk-123, claims map[plan:pro]
}

// approvedRequest returns an Approver with one browser request, approved.
func approvedRequest() *fakeApprover {
	a := &fakeApprover{}
	a.add(tabCode, tabHandle, tabRedirect)
	a.set(tabCode, oauth.PendingApproved, "alice")
	return a
}

// visit loads or posts the approval tab of approvedRequest.
func visit(h http.Handler, method string, form url.Values) (int, string) {
	r := httptest.NewRequest(method, tabURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// hiddenFields returns the hidden fields of page's form, with name=value.
func hiddenFields(page, name, value string) url.Values {
	v := hidden(page)
	v.Set(name, value)
	return v
}

// firstLine returns the first line of body that starts with prefix.
func firstLine(body, prefix string) string {
	for _, l := range strings.Split(body, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
