package oidctest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestDiscovery: the provider serves its discovery document for its issuer.
func TestDiscovery(t *testing.T) {
	s := New(t, Client{ID: "web", Secret: "secret", RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	resp, err := http.Get(s.Issuer + ".well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer   string `json:"issuer"`
		AuthURL  string `json:"authorization_endpoint"`
		TokenURL string `json:"token_endpoint"`
		JWKSURI  string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery: %d %v", resp.StatusCode, err)
	}
	if d.Issuer != s.Issuer || d.AuthURL == "" || d.TokenURL == "" || d.JWKSURI == "" {
		t.Fatalf("discovery document %+v", d)
	}
}
