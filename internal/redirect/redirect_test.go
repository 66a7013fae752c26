package redirect

import (
	"net/url"
	"testing"
)

func TestWith(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		add  url.Values
		want string
	}{
		{"https://a.example/cb", url.Values{"code": {"c"}, "state": {"s"}}, "https://a.example/cb?code=c&state=s"},
		{"https://a.example/cb?tenant=x", url.Values{"code": {"c"}}, "https://a.example/cb?code=c&tenant=x"},
		{"https://a.example/cb?code=evil", url.Values{"code": {"c"}}, "https://a.example/cb?code=c"},
		{"https://a.example/cb", url.Values{"state": {""}, "code": {"c"}}, "https://a.example/cb?code=c"},
		{"cursor://anysphere.cursor-mcp/oauth/callback", url.Values{"code": {"c"}}, "cursor://anysphere.cursor-mcp/oauth/callback?code=c"},
		{"http://127.0.0.1:5/cb", url.Values{"state": {"a&b=c"}}, "http://127.0.0.1:5/cb?state=a%26b%3Dc"},
	} {
		got, err := With(tc.uri, tc.add)
		if err != nil || got != tc.want {
			t.Errorf("With(%q, %v) = %q, %v; want %q", tc.uri, tc.add, got, err, tc.want)
		}
	}
	if _, err := With("http://[::1", nil); err == nil {
		t.Error("malformed URI accepted")
	}
}
