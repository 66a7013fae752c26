// Command mcpauth-bench measures what authentication costs an MCP server,
// against the targets of the fast-path issue, on this machine, in one run:
//
//	go run ./cmd/mcpauth-bench [-duration 3s] [-workers 16] [-rounds 20] [-slice 500ms]
//
// It starts, on loopback, the same stateless go-sdk MCP server twice (once
// bare, once behind mcpauth.Wrap with SQLite), drives both in turn, in
// short interleaved slices, with a parallel load generator, measures
// in-process bearer verification and the /token and /register endpoints,
// and prints each target with its measured value.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/sqlite"
)

func main() {
	cfg := config{}
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "length of each load phase")
	flag.IntVar(&cfg.workers, "workers", 16, "parallel clients")
	flag.IntVar(&cfg.rounds, "rounds", 20, "rounds of the MCP comparison (each: bare, auth, auth, bare)")
	flag.DurationVar(&cfg.sliceDuration, "slice", 500*time.Millisecond, "length of each slice of the MCP comparison")
	flag.BoolVar(&cfg.noCache, "nocache", false, "turn the verified-token cache off (to see what it saves)")
	flag.DurationVar(&cfg.idleWait, "idle", 3*time.Second, "how long the example server idles before its RSS is read")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU profiles of the authenticated tools/call slices to this file (FILE, FILE.2, ...)")
	flag.StringVar(&cfg.tokenProfile, "tokenprofile", "", "write CPU profiles of the /token loads (exchanges, then rotations as FILE.2) to this file")
	flag.Parse()
	res, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

type config struct {
	duration time.Duration
	workers  int
	rounds   int
	// sliceDuration is the length of one load slice of the MCP comparison.
	sliceDuration time.Duration
	// noCache turns the verified-token cache off.
	noCache bool
	// idleWait is how long the example server idles before its RSS is read.
	idleWait time.Duration
	// cpuProfile and tokenProfile name files for CPU profiles of the
	// authenticated MCP load and of the /token load; empty means none.
	cpuProfile, tokenProfile string
}

// results are the measured values; print compares them with the targets.
type results struct {
	bareRPS, authRPS        float64
	ratios                  []float64 // auth/bare of each round
	seenP50, seenP99        time.Duration
	unseen, rawVerify       time.Duration
	exchangeRPS, refreshRPS float64
	registerRPS             float64
	idleRSS                 int64 // bytes; 0 when not measured
	workers                 int
}

func (r results) print(w io.Writer) {
	rs := slices.Sorted(slices.Values(r.ratios))
	ratio := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		ratio = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	fmt.Fprintf(w, "mcpauth-bench (%d workers)\n", r.workers)
	row := func(name, target, got string, ok bool) {
		mark := "MISSED"
		if ok {
			mark = "met"
		}
		fmt.Fprintf(w, "  %-48s target %-14s measured %-22s %s\n", name, target, got, mark)
	}
	row("tools/call throughput, auth / no auth", ">= 0.97x", fmt.Sprintf("%.3fx (%.0f / %.0f req/s)", ratio, r.authRPS, r.bareRPS), ratio >= 0.97)
	fmt.Fprintf(w, "    (median of %d rounds' ratios; they ranged %.3f to %.3f)\n", len(rs), rs[0], rs[len(rs)-1])
	row("verify a seen token, p99", "<= 50us", fmt.Sprintf("%v (p50 %v)", r.seenP99.Round(time.Microsecond), r.seenP50.Round(time.Microsecond)), r.seenP99 <= 50*time.Microsecond)
	vr := float64(r.unseen) / float64(r.rawVerify)
	row("verify an unseen token / raw signature check", "<= 1.2x", fmt.Sprintf("%.2fx (%v / %v)", vr, r.unseen.Round(time.Microsecond), r.rawVerify.Round(time.Microsecond)), vr <= 1.2)
	row("/token authorization_code exchanges", ">= 3000/s", fmt.Sprintf("%.0f/s", r.exchangeRPS), r.exchangeRPS >= 3000)
	row("/token refresh rotations", ">= 3000/s", fmt.Sprintf("%.0f/s", r.refreshRPS), r.refreshRPS >= 3000)
	row("/register", ">= 3000/s", fmt.Sprintf("%.0f/s", r.registerRPS), r.registerRPS >= 3000)
	if r.idleRSS > 0 {
		mb := float64(r.idleRSS) / (1 << 20)
		row("example server idle RSS", "<= 30 MB", fmt.Sprintf("%.1f MB", mb), mb <= 30)
	} else {
		fmt.Fprintf(w, "  %-48s not measured (Linux only)\n", "example server idle RSS")
	}
}

func newMCPServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	return s
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func run(ctx context.Context, cfg config) (results, error) {
	res := results{workers: cfg.workers}
	dir, err := os.MkdirTemp("", "mcpauth-bench")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		return res, err
	}
	defer store.Close()

	stateless := &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}
	bareServer := newMCPServer() // one server each, as Wrap uses one
	bareURL, stopBare, err := serve(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return bareServer }, stateless))
	if err != nil {
		return res, err
	}
	defer stopBare()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	authBase := "http://" + ln.Addr().String()
	cacheSize := 0 // the default
	if cfg.noCache {
		cacheSize = -1
	}
	h, err := mcpauth.Wrap(newMCPServer(), mcpauth.Options{Issuer: authBase, Store: store, Streamable: stateless,
		ProviderOptions: provider.Options{VerifiedTokenCacheSize: cacheSize}})
	if err != nil {
		return res, err
	}
	authSrv := &http.Server{Handler: h}
	go authSrv.Serve(ln)
	defer authSrv.Close()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.workers * 2}}
	p := h.DefaultProvider()
	tok, err := obtainToken(ctx, hc, p, authBase)
	if err != nil {
		return res, fmt.Errorf("obtain token: %w", err)
	}

	// 1. tools/call throughput, bare vs authenticated, interleaved.
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
	// The two servers are loaded in turn, in short slices ordered
	// bare-auth-auth-bare within a round, so that the machine's drift
	// (its speed here wanders by tens of percent from one second to the
	// next) hits both alike. Each round yields a ratio of its two sums;
	// the verdict is the median over the rounds.
	var bare, auth float64
	slice := cfg
	slice.duration = cfg.sliceDuration
	for range cfg.rounds {
		var b, a float64
		for _, withAuth := range []bool{false, true, true, false} {
			if !withAuth {
				b += load(hc, slice, bareURL, "", call)
				continue
			}
			stop, err := profile(cfg.cpuProfile)
			if err != nil {
				return res, err
			}
			a += load(hc, slice, authBase+"/mcp", tok.AccessToken, call)
			stop()
		}
		bare, auth = bare+b/2, auth+a/2
		res.ratios = append(res.ratios, a/b)
	}
	res.bareRPS, res.authRPS = bare/float64(cfg.rounds), auth/float64(cfg.rounds)

	// 2. In-process verification: a token seen before, tokens never seen,
	// and the raw signature check alone.
	res.seenP50, res.seenP99 = latency(2000, func(int) error { _, err := p.LoadAccessToken(ctx, tok.AccessToken); return err })
	unseen := make([]string, 500)
	for i := range unseen {
		t, err := refresh(ctx, hc, authBase, tok)
		if err != nil {
			return res, err
		}
		unseen[i], tok = t.AccessToken, t
	}
	keys, err := store.ListKeys(ctx)
	if err != nil {
		return res, err
	}
	key, err := jwtkeys.Parse(keys[0])
	if err != nil {
		return res, err
	}
	v := jwtkeys.Verifier{Issuer: authBase, Audiences: []string{h.Resource()}, Lookup: func(string) *jwtkeys.Key { return key }}
	// Alternate the two, token by token, so that drift hits both alike;
	// the raw check does not touch the provider's cache.
	res.rawVerify, res.unseen = latency2(len(unseen),
		func(i int) error { _, err := v.Verify(unseen[i]); return err },
		func(i int) error { _, err := p.LoadAccessToken(ctx, unseen[i]); return err })

	// 3. /token and /register with parallel clients.
	res.exchangeRPS, err = tokenLoad(ctx, hc, cfg, p, authBase)
	if err != nil {
		return res, err
	}
	res.refreshRPS, err = refreshLoad(ctx, hc, cfg, p, authBase)
	if err != nil {
		return res, err
	}
	reg := []byte(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"bench"}`)
	res.registerRPS = rate(cfg, func(_, _ int) error {
		return post(hc, authBase+"/register", "application/json", reg, http.StatusCreated)
	})

	// 4. The example server's resident memory once idle.
	res.idleRSS, err = idleRSS(ctx, dir, cfg.idleWait)
	if err != nil {
		return res, fmt.Errorf("idle RSS: %w", err)
	}
	return res, nil
}

// idleRSS builds the example server, starts it on a free loopback port
// with a fresh SQLite database in dir, waits, and returns its resident
// set size (VmRSS, Linux only; 0 elsewhere).
func idleRSS(ctx context.Context, dir string, wait time.Duration) (int64, error) {
	if runtime.GOOS != "linux" {
		return 0, nil
	}
	bin := filepath.Join(dir, "example")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mcp-oauth/oauth/examples/stdio-and-http")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %w: %s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "serve", "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "rss.db"))
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(wait)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// profile starts a CPU profile into file (appending a round number if the
// file exists already) and returns the function that stops it; an empty
// file name profiles nothing.
func profile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	name := file
	for i := 2; ; i++ {
		if _, err := os.Stat(name); err != nil {
			break
		}
		name = fmt.Sprintf("%s.%d", file, i)
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// load drives url with tools/call requests from cfg.workers clients for
// cfg.duration and returns successful requests per second.
func load(hc *http.Client, cfg config, url, bearer string, body []byte) float64 {
	return rate(cfg, func(_, _ int) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// rate runs f from cfg.workers goroutines for cfg.duration and returns
// successes per second; f gets the worker's number and the call's.
func rate(cfg config, f func(worker, i int) error) float64 {
	var n, next, failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	for w := range cfg.workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if f(w, int(next.Add(1)-1)) == nil {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d failed requests\n", failed.Load())
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// latency runs f n times serially and returns the median and 99th
// percentile durations.
func latency(n int, f func(i int) error) (p50, p99 time.Duration) {
	ds := make([]time.Duration, 0, n)
	for i := range n {
		t := time.Now()
		if err := f(i); err != nil {
			fmt.Fprintln(os.Stderr, "warning:", err)
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// latency2 runs f and g alternately, n times each, and returns their
// median durations.
func latency2(n int, f, g func(i int) error) (fp50, gp50 time.Duration) {
	fs := make([]time.Duration, 0, n)
	gs := make([]time.Duration, 0, n)
	for i := range n {
		for _, c := range []struct {
			f  func(int) error
			ds *[]time.Duration
		}{{f, &fs}, {g, &gs}} {
			t := time.Now()
			if err := c.f(i); err != nil {
				fmt.Fprintln(os.Stderr, "warning:", err)
			}
			*c.ds = append(*c.ds, time.Since(t))
		}
	}
	slices.Sort(fs)
	slices.Sort(gs)
	return fs[n/2], gs[n/2]
}

func post(hc *http.Client, url, ct string, body []byte, want int) error {
	resp, err := hc.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

func challenge() string {
	s := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// codes registers a client and runs n authorizations through approval,
// returning the client and n fresh codes.
func codes(ctx context.Context, p *provider.Provider, base string, n int) (*oauth.Client, []string, error) {
	md := benchClient
	reg, err := p.RegisterClient(ctx, &md)
	if err != nil {
		return nil, nil, err
	}
	c, err := p.GetClient(ctx, reg.ClientID)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, n)
	for i := range out {
		to, err := p.Authorize(ctx, c, &oauth.AuthorizationParams{ClientID: c.ID, RedirectURI: c.RedirectURIs[0], RedirectURIExplicit: true,
			Scopes: []string{"mcp"}, CodeChallenge: challenge(), Resource: base + "/mcp"})
		if err != nil {
			return nil, nil, err
		}
		u, _ := url.Parse(to)
		if _, err := p.Approve(ctx, u.Query().Get("user_code"), fmt.Sprintf("user%d", i), nil); err != nil {
			return nil, nil, err
		}
		_, back, err := p.Poll(ctx, &oauth.PollRequest{Handle: u.Query().Get("request"), UserCode: u.Query().Get("user_code")})
		if err != nil {
			return nil, nil, err
		}
		bu, _ := url.Parse(back)
		out[i] = bu.Query().Get("code")
	}
	return c, out, nil
}

func exchange(ctx context.Context, hc *http.Client, base string, c *oauth.Client, code string) (*oauth.TokenResponse, error) {
	return tokenCall(hc, base, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {c.RedirectURIs[0]}, "client_id": {c.ID}})
}

func tokenCall(hc *http.Client, base string, form url.Values) (*oauth.TokenResponse, error) {
	resp, err := hc.PostForm(base+"/token", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var t oauth.TokenResponse
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&t) != nil {
		return nil, fmt.Errorf("token: status %d", resp.StatusCode)
	}
	return &t, nil
}

// tokenBundle is a token response with the client it belongs to.
type tokenBundle struct {
	*oauth.TokenResponse
	clientID string
}

func obtainToken(ctx context.Context, hc *http.Client, p *provider.Provider, base string) (tokenBundle, error) {
	c, cs, err := codes(ctx, p, base, 1)
	if err != nil {
		return tokenBundle{}, err
	}
	t, err := exchange(ctx, hc, base, c, cs[0])
	return tokenBundle{t, c.ID}, err
}

func refresh(ctx context.Context, hc *http.Client, base string, t tokenBundle) (tokenBundle, error) {
	r, err := tokenCall(hc, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.RefreshToken}, "client_id": {t.clientID}})
	return tokenBundle{r, t.clientID}, err
}

// tokenLoad measures code exchanges per second: codes are prepared first,
// enough for the phase at a generous rate, then redeemed in parallel.
func tokenLoad(ctx context.Context, hc *http.Client, cfg config, p *provider.Provider, base string) (float64, error) {
	n := int(cfg.duration.Seconds()*4000) + cfg.workers
	c, cs, err := codes(ctx, p, base, n)
	if err != nil {
		return 0, err
	}
	var stop atomic.Bool
	stopProfile, err := profile(cfg.tokenProfile)
	if err != nil {
		return 0, err
	}
	defer stopProfile()
	r := rate(cfg, func(_, i int) error {
		if i >= len(cs) {
			stop.Store(true)
			return fmt.Errorf("out of codes")
		}
		_, err := exchange(ctx, hc, base, c, cs[i])
		return err
	})
	if stop.Load() {
		fmt.Fprintln(os.Stderr, "warning: ran out of prepared codes; the exchange rate is a lower bound")
	}
	return r, nil
}

// refreshLoad measures rotations per second: each worker rotates its own
// chain of refresh tokens.
func refreshLoad(ctx context.Context, hc *http.Client, cfg config, p *provider.Provider, base string) (float64, error) {
	chains := make([]tokenBundle, cfg.workers)
	c, cs, err := codes(ctx, p, base, cfg.workers)
	if err != nil {
		return 0, err
	}
	for i := range chains {
		t, err := exchange(ctx, hc, base, c, cs[i])
		if err != nil {
			return 0, err
		}
		chains[i] = tokenBundle{t, c.ID}
	}
	stopProfile, err := profile(cfg.tokenProfile)
	if err != nil {
		return 0, err
	}
	defer stopProfile()
	return rate(cfg, func(w, _ int) error {
		next, err := refresh(ctx, hc, base, chains[w]) // each worker rotates its own chain
		if err == nil {
			chains[w] = next
		}
		return err
	}), nil
}

// benchClient is the registration of the benchmark's public client.
var benchClient = oauthex.ClientRegistrationMetadata{
	RedirectURIs: []string{"http://127.0.0.1:3000/cb"}, TokenEndpointAuthMethod: "none", ClientName: "bench",
}
