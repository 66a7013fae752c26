package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	w := New(time.Minute, "*")
	for range 3 {
		w.Add(t0, "a", "*")
	}
	for _, tc := range []struct {
		name   string
		at     time.Time
		limits map[string]int
		want   bool
	}{
		{"at the limit", t0, map[string]int{"a": 3}, false},
		{"under a higher limit", t0, map[string]int{"a": 4}, true},
		{"another key is free", t0, map[string]int{"b": 1}, true},
		{"any key at its limit refuses", t0, map[string]int{"b": 1, "*": 3}, false},
		{"events age out after the span", t0.Add(time.Minute), map[string]int{"a": 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.Under(tc.at, tc.limits); got != tc.want {
				t.Errorf("under(%v) = %v, want %v", tc.limits, got, tc.want)
			}
		})
	}

	t.Run("take", func(t *testing.T) {
		w := New(time.Minute, "")
		if !w.Take("ip", t0, 2) || !w.Take("ip", t0, 2) || w.Take("ip", t0, 2) {
			t.Error("take allowed other than the first two")
		}
		if !w.Take("ip", t0.Add(61*time.Second), 2) {
			t.Error("take refused after the span")
		}
	})

	t.Run("full: stale keys go first", func(t *testing.T) {
		w := New(time.Minute, "*")
		w.Add(t0, "recent")
		for i := range MaxTracked - 1 {
			w.Add(t0.Add(-2*time.Minute), fmt.Sprint("old", i))
		}
		w.Add(t0, "new")
		if w.Under(t0, map[string]int{"recent": 1}) {
			t.Error("a recent key was forgotten while stale ones could go")
		}
	})

	t.Run("full of fresh keys: the overall count survives", func(t *testing.T) {
		w := New(time.Minute, "*")
		for i := range MaxTracked {
			w.Add(t0, fmt.Sprint("ip", i), "*")
		}
		w.Add(t0, "one more", "*")
		if w.Under(t0, map[string]int{"*": MaxTracked + 1}) {
			t.Error("the overall count was forgotten")
		}
		if !w.Under(t0, map[string]int{"ip0": 1}) {
			t.Error("fresh keys were not forgotten when full")
		}
	})
}

func TestNetwork(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.1": "192.0.2.1", "::ffff:192.0.2.1": "::ffff:192.0.2.1",
		"2001:db8::1": "2001:db8::/64", "2001:db8:0:0:ffff::1": "2001:db8::/64", "2001:db8:0:1::1": "2001:db8:0:1::/64",
		"not an ip": "not an ip", "": "",
	} {
		if got := Network(ip); got != want {
			t.Errorf("Network(%q) = %q, want %q", ip, got, want)
		}
	}
}
