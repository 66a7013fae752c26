package upstream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// Cookie names: the login in progress and the signed-in session.
const (
	loginCookie   = "mcpauth_upstream_login"
	sessionCookie = "mcpauth_upstream"
	// maxCookie bounds a cookie's value; browsers keep about 4 KiB per
	// cookie, name and attributes included.
	maxCookie = 3800
)

// login is the state of a sign-in in progress, sealed in its cookie.
type login struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Return   string    `json:"r"`
	Expires  time.Time `json:"e"`
}

// session is a signed-in browser, sealed in its cookie.
type session struct {
	Subject string       `json:"sub"`
	Expires time.Time    `json:"e"`
	Token   *storedToken `json:"t,omitempty"`
}

// Handler serves the sign-in at prefix + "/login" (GET; ?return= a path
// on this site to come back to) and the upstream's redirect at prefix +
// "/callback", and sign-out at prefix + "/logout" (POST from this site).
func (p *IdP) Handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	origin := http.NewCrossOriginProtection()
	mux.HandleFunc("GET "+prefix+"/login", p.startLogin)
	mux.HandleFunc("GET "+prefix+"/callback", p.callback)
	mux.Handle("POST "+prefix+"/logout", origin.Handler(http.HandlerFunc(p.logout)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		page.SetHeaders(w.Header())
		mux.ServeHTTP(w, r)
	})
}

// localPath reports whether ret is a path on this site: no scheme, no
// host, not protocol-relative, no backslash tricks (no open redirect).
func localPath(ret string) bool {
	return strings.HasPrefix(ret, "/") && !strings.HasPrefix(ret, "//") && !strings.ContainsAny(ret, "\\\r\n") && len(ret) <= 2048
}

func (p *IdP) startLogin(w http.ResponseWriter, r *http.Request) {
	ret := r.URL.Query().Get("return")
	if !localPath(ret) {
		ret = p.defaultReturn
	}
	l := login{State: secret.New(""), Nonce: secret.New(""), Verifier: oauth2.GenerateVerifier(), Return: ret,
		Expires: p.opts.Now().Add(loginTTL)}
	if err := p.setCookie(w, loginCookie, l, loginTTL); err != nil {
		p.fail(w, http.StatusInternalServerError, "The sign-in could not start.", err)
		return
	}
	opts := make([]oauth2.AuthCodeOption, 0, len(p.opts.AuthParams)+2)
	for k, v := range p.opts.AuthParams {
		switch k {
		case "state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri", "client_id", "response_type", "scope":
		default:
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	// The library's parameters last, so that they win.
	opts = append(opts, oidcNonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier))
	http.Redirect(w, r, p.oauth.AuthCodeURL(l.State, opts...), http.StatusFound)
}

// oidcNonce is the nonce parameter of the authorization request.
func oidcNonce(n string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("nonce", n) }

func (p *IdP) callback(w http.ResponseWriter, r *http.Request) {
	var l login
	if err := p.readCookie(r, loginCookie, &l); err != nil || p.opts.Now().After(l.Expires) {
		p.fail(w, http.StatusBadRequest, "This sign-in expired or was started in another browser. Start again.", err)
		return
	}
	p.clearCookie(w, loginCookie) // single use, whatever follows
	q := r.URL.Query()
	if !secret.Equal(q.Get("state"), l.State) {
		p.fail(w, http.StatusBadRequest, "This sign-in does not match the one this browser started. Start again.", nil)
		return
	}
	// RFC 9207 §2.4: the response's iss must be the upstream's issuer;
	// an upstream that announces the parameter must send it.
	if iss, ok := q["iss"]; (ok && (len(iss) != 1 || iss[0] != p.opts.Issuer)) || (!ok && p.meta.IssParameter) {
		p.fail(w, http.StatusBadRequest, "The identity provider's answer came from the wrong issuer.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		p.fail(w, http.StatusForbidden, "The identity provider did not sign you in ("+e+").", nil)
		return
	}
	ctx := p.client(r.Context())
	tok, err := p.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		p.fail(w, http.StatusBadGateway, "The identity provider refused the sign-in.", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		p.fail(w, http.StatusBadGateway, "The identity provider sent no ID token.", nil)
		return
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		p.fail(w, http.StatusBadGateway, "The identity provider's ID token does not verify.", err)
		return
	}
	if !secret.Equal(idt.Nonce, l.Nonce) {
		p.fail(w, http.StatusBadRequest, "The identity provider's ID token is for another sign-in.", nil)
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		p.fail(w, http.StatusBadGateway, "The identity provider's ID token does not decode.", err)
		return
	}
	if err := p.addUserInfo(r, tok, idt.Subject, claims); err != nil {
		p.fail(w, http.StatusBadGateway, "The identity provider's user information could not be read.", err)
		return
	}
	if !p.opts.Allow.allows(claims) {
		p.log.Warn("upstream: identity not allowed", "issuer", p.opts.Issuer, "upstream_sub", idt.Subject)
		p.fail(w, http.StatusForbidden, "You signed in, but this identity may not use this server.", ErrNotAllowed)
		return
	}
	subject := idt.Subject
	if p.opts.Subject != nil {
		if subject, err = p.opts.Subject(claims); err != nil {
			p.fail(w, http.StatusForbidden, "This identity cannot be mapped to an account here.", err)
			return
		}
	}
	if subject == "" || len(subject) > 255 {
		p.fail(w, http.StatusForbidden, "This identity has no usable subject.", nil)
		return
	}
	s := session{Subject: subject, Expires: p.opts.Now().Add(p.opts.SessionTTL),
		Token: &storedToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}}
	if err := p.setCookie(w, sessionCookie, s, p.opts.SessionTTL); err != nil {
		p.fail(w, http.StatusInternalServerError, "The sign-in could not be kept.", err)
		return
	}
	p.log.Info("upstream: signed in", "subject", subject)
	// Back to where the sign-in started (a path on this site, checked
	// when it started): the approval page, or the console.
	http.Redirect(w, r, l.Return, http.StatusSeeOther)
}

// addUserInfo adds to claims those of the upstream's UserInfo endpoint
// (OpenID Connect Core §5.3) that the ID token lacks: many providers put
// email and groups there only. Its sub must be the ID token's (§5.3.2).
// An upstream without the endpoint adds nothing.
func (p *IdP) addUserInfo(r *http.Request, tok *oauth2.Token, sub string, claims map[string]any) error {
	if p.oidc.UserInfoEndpoint() == "" {
		return nil
	}
	ctx := p.client(r.Context())
	info, err := p.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if info.Subject != sub {
		return errors.New("upstream: the UserInfo sub is not the ID token's")
	}
	var more map[string]any
	if err := info.Claims(&more); err != nil {
		return err
	}
	for k, v := range more {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

func (p *IdP) logout(w http.ResponseWriter, r *http.Request) {
	p.clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// session returns the browser's live session, or nil.
func (p *IdP) session(r *http.Request) *session {
	var s session
	if p.readCookie(r, sessionCookie, &s) != nil || !p.opts.Now().Before(s.Expires) || s.Subject == "" {
		return nil
	}
	return &s
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign-in failed</title></head>
<body><main><h1>Sign-in failed</h1><p data-upstream-error>{{.}}</p></main></body></html>`))

// fail answers a failed sign-in with a page saying why, in words that
// carry no token or internal detail; err is logged.
func (p *IdP) fail(w http.ResponseWriter, status int, msg string, err error) {
	if err != nil {
		p.log.Warn("upstream: sign-in failed", "status", status, "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	errorPage.Execute(w, msg)
}

func (p *IdP) setCookie(w http.ResponseWriter, name string, v any, ttl time.Duration) error {
	pt, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Sealed with the cookie's name as additional data: a login state
	// cannot pass for a session.
	val := base64.RawURLEncoding.EncodeToString(p.cookies.Seal(nil, pt, []byte(name)))
	if len(val) > maxCookie {
		return fmt.Errorf("upstream: the %s cookie would be %d bytes, over %d (the upstream's tokens are too large to keep in a cookie)", name, len(val), maxCookie)
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: val, Path: "/", MaxAge: int(ttl / time.Second), HttpOnly: true,
		Secure: p.opts.Secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func (p *IdP) readCookie(r *http.Request, name string, v any) error {
	c, err := r.Cookie(name)
	if err != nil {
		return err
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return errors.New("upstream: malformed cookie")
	}
	pt, err := p.cookies.Open(b, []byte(name))
	if err != nil {
		return errors.New("upstream: cookie does not open")
	}
	return json.Unmarshal(pt, v)
}

func (p *IdP) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: p.opts.Secure, SameSite: http.SameSiteLaxMode})
}
