package approval_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

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
