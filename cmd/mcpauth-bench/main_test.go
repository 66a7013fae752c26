package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchSmoke runs every phase briefly, so the command keeps working.
func TestBenchSmoke(t *testing.T) {
	res, err := run(context.Background(), config{duration: 150 * time.Millisecond, sliceDuration: 50 * time.Millisecond, workers: 2, rounds: 1,
		idleWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{
		"bare rps": res.bareRPS, "auth rps": res.authRPS, "exchange rps": res.exchangeRPS,
		"refresh rps": res.refreshRPS, "register rps": res.registerRPS,
		"seen p99": float64(res.seenP99), "unseen": float64(res.unseen), "raw verify": float64(res.rawVerify),
		"idle RSS": float64(res.idleRSS),
	} {
		if v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	var out bytes.Buffer
	res.print(&out)
	if n := strings.Count(out.String(), "target"); n != 7 {
		t.Errorf("printed %d targets, want 7:\n%s", n, out.String())
	}
}
