package devicepage

import (
	"fmt"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	w := newWindow(time.Minute, "*")
	for range 3 {
		w.add(t0, "a", "*")
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
			if got := w.under(tc.at, tc.limits); got != tc.want {
				t.Errorf("under(%v) = %v, want %v", tc.limits, got, tc.want)
			}
		})
	}

	t.Run("take", func(t *testing.T) {
		w := newWindow(time.Minute, "")
		if !w.take("ip", t0, 2) || !w.take("ip", t0, 2) || w.take("ip", t0, 2) {
			t.Error("take allowed other than the first two")
		}
		if !w.take("ip", t0.Add(61*time.Second), 2) {
			t.Error("take refused after the span")
		}
	})

	t.Run("full: stale keys go first", func(t *testing.T) {
		w := newWindow(time.Minute, "*")
		w.add(t0, "recent")
		for i := range maxTracked - 1 {
			w.add(t0.Add(-2*time.Minute), fmt.Sprint("old", i))
		}
		w.add(t0, "new")
		if w.under(t0, map[string]int{"recent": 1}) {
			t.Error("a recent key was forgotten while stale ones could go")
		}
	})

	t.Run("full of fresh keys: the overall count survives", func(t *testing.T) {
		w := newWindow(time.Minute, "*")
		for i := range maxTracked {
			w.add(t0, fmt.Sprint("ip", i), "*")
		}
		w.add(t0, "one more", "*")
		if w.under(t0, map[string]int{"*": maxTracked + 1}) {
			t.Error("the overall count was forgotten")
		}
		if !w.under(t0, map[string]int{"ip0": 1}) {
			t.Error("fresh keys were not forgotten when full")
		}
	})
}
