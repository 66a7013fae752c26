package approval

import (
	"maps"
	"net/http"
	"slices"

	oauth "github.com/mcp-oauth/oauth"
)

// SetupIdentity is implemented by an Identity whose sign-in brings what a
// grant approved by its user keeps, such as the upstream tokens of a
// federated sign-in (package upstream): its setup is passed to
// oauth.Approver.Approve for every approval the signed-in user makes
// (quick authorize, the console), merged with a setup step's.
type SetupIdentity interface {
	Identity
	// ApprovalSetup returns the setup of an approval made by r's user, or
	// nil for none.
	ApprovalSetup(r *http.Request) (*oauth.GrantSetup, error)
}

// identitySetup returns the setup that the Identity of opts gives an
// approval made through r, merged with step's (whose values and claims
// win on a shared name).
func identitySetup(id Identity, r *http.Request, step *oauth.GrantSetup) (*oauth.GrantSetup, error) {
	si, ok := id.(SetupIdentity)
	if !ok {
		return step, nil
	}
	s, err := si.ApprovalSetup(r)
	if err != nil || s == nil {
		return step, err
	}
	if step == nil {
		return s, nil
	}
	out := &oauth.GrantSetup{Claims: map[string]any{}}
	maps.Copy(out.Claims, s.Claims)
	maps.Copy(out.Claims, step.Claims)
	for _, v := range s.Values {
		if !slices.ContainsFunc(step.Values, func(x oauth.GrantValue) bool { return x.Name == v.Name }) {
			out.Values = append(out.Values, v)
		}
	}
	out.Values = append(out.Values, step.Values...)
	return out, nil
}

// approve approves the request with userCode as user, the console's
// Identity's setup (see SetupIdentity) merged with step's.
func (c *Console) approve(r *http.Request, userCode, user string, step *oauth.GrantSetup) error {
	setup, err := identitySetup(c.opts.Identity, r, step)
	if err != nil {
		return err
	}
	_, err = c.a.Approve(r.Context(), userCode, user, setup)
	return err
}
