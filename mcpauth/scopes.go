package mcpauth

import (
	"path"
	"slices"
	"strings"
)

// plainPath reports whether p is empty or a clean absolute path whose
// segments use only RFC 3986 unreserved characters, so that it can be used
// both in URLs and as an http.ServeMux pattern without surprises (no
// wildcards, escapes, dot segments or trailing slash).
func plainPath(p string) bool {
	if p == "" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || path.Clean(p) != p {
		return false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
				return false
			}
		}
	}
	return true
}

// describeScopes returns the plain-words description of every scope in
// opts.Scopes that has one: the host's own, or one derived from what the
// scope unlocks (see Options.ScopeDescriptions).
func describeScopes(opts Resource) map[string]string {
	out := make(map[string]string, len(opts.Scopes))
	for _, sc := range opts.Scopes {
		if d := opts.ScopeDescriptions[sc]; d != "" {
			out[sc] = d
			continue
		}
		var tools []string
		for tool, scopes := range opts.ToolScopes {
			if slices.Contains(scopes, sc) {
				tools = append(tools, tool)
			}
		}
		slices.Sort(tools)
		switch {
		case len(tools) == 1:
			out[sc] = "Use the tool " + tools[0]
		case len(tools) > 1:
			out[sc] = "Use the tools " + strings.Join(tools[:len(tools)-1], ", ") + " and " + tools[len(tools)-1]
		case slices.Contains(opts.RequiredScopes, sc) || (len(opts.RequiredScopes) == 0 && sc == DefaultScope):
			if len(opts.ToolScopes) > 0 {
				out[sc] = "Connect, and use the resources, prompts and tools that need no further access"
			} else {
				out[sc] = "Connect, and use the tools, resources and prompts"
			}
		}
	}
	return out
}
