package approval

import oauth "github.com/mcp-oauth/oauth"

// ResourceInfo describes to the owner a protected resource that requests
// ask for (RFC 8707), for an authorization server in front of several MCP
// servers: the pages then say which one a request is for.
type ResourceInfo struct {
	// Name is the resource's human-readable name (RFC 9728
	// resource_name), shown beside its URL.
	Name string
	// ScopeDescriptions, when set, replace the options' ScopeDescriptions
	// for requests for this resource (scopes of two resources may share a
	// name but not a meaning).
	ScopeDescriptions map[string]string
}

// describeRequest returns the name of the resource p asks for and its
// scopes as the pages show them.
func describeRequest(resources map[string]ResourceInfo, descriptions map[string]string, p *oauth.PendingRequest) (string, []scope) {
	info, ok := resources[p.Resource]
	if ok && info.ScopeDescriptions != nil {
		descriptions = info.ScopeDescriptions
	}
	return info.Name, describeScopes(descriptions, p.Scopes)
}
