package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// conformanceDir holds the pinned MCP conformance package and a Node 22
// binary (package.json, package-lock.json); .ci/run installs them with
// `npm ci --prefix conformance`.
var conformanceDir = filepath.Join("..", "..", "conformance")

// TestMCPConformanceAuthorizationServer runs the official MCP conformance
// package's authorization-server scenarios (metadata discovery and the
// authorization-code grant) against the example server, playing the owner
// who approves the code the browser shows.
func TestMCPConformanceAuthorizationServer(t *testing.T) {
	node := filepath.Join(conformanceDir, "node_modules", ".bin", "node")
	cli := filepath.Join(conformanceDir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, cli} {
		if _, err := os.Stat(p); err != nil {
			msg := fmt.Sprintf("MCP conformance package not installed (%s missing); run `npm ci --prefix conformance` (.ci/run does)", p)
			if os.Getenv("MCPAUTH_REQUIRE_CONFORMANCE") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	base, _, h := startExample(t)

	// A pre-registered public client with the loopback callback the
	// conformance runner listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	callback := fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	resp, err := http.Post(base+"/register", "application/json", strings.NewReader(
		`{"redirect_uris":["`+callback+`"],"token_endpoint_auth_method":"none","client_name":"MCP conformance"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "authorization", "--url", base, "--client-id", reg.ClientID,
		"--resource", base+"/mcp", "-p", fmt.Sprint(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var authURL string
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if strings.HasPrefix(line, base+"/authorize?") {
			authURL = line
		}
		if !strings.HasPrefix(line, "Callback server started") || authURL == "" {
			continue
		}
		// The runner asked a browser to open authURL and now listens for
		// the callback. Be the browser, and the owner who approves.
		go func(authURL string) {
			loc, err := browse(t, authURL, fmt.Sprintf("127.0.0.1:%d", port), func(code string) error {
				_, err := h.Approve(ctx, code, "owner")
				return err
			})
			if err != nil {
				t.Errorf("browser: %v", err)
				cancel()
				return
			}
			r, err := http.Get(loc.String()) // deliver the code to the runner's callback
			if err != nil {
				t.Errorf("callback: %v", err)
				cancel()
				return
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}(authURL)
		authURL = ""
	}
	err = cmd.Wait()
	t.Logf("conformance output:\n%s", log.String())
	if err != nil {
		t.Fatalf("conformance runner failed: %v", err)
	}
	m := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindStringSubmatch(log.String())
	if m == nil || m[2] != "0" || m[1] == "0" {
		t.Fatalf("conformance summary %q: want some passed and 0 failed", m)
	}
}
