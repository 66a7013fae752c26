// Package redirect builds authorization responses (OAuth 2.1 §4.1.2): the
// client's registered redirect URI with response parameters added to its query.
package redirect

import (
	"net/url"
)

// With returns uri with params added to its query component, keeping any
// query the registered URI already had (OAuth 2.1 §4.1.2: "MUST retain").
// Parameters already present with the same name are replaced, so a
// registered URI cannot smuggle a second code or state.
func With(uri string, params url.Values) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k, vs := range params {
		q.Del(k)
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	u.Fragment = ""
	return u.String(), nil
}
