package replay

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestUse(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := New(2)
	steps := []struct {
		id   string
		exp  time.Time
		at   time.Time
		want Result
	}{
		{"a", now.Add(time.Minute), now, Fresh},
		{"a", now.Add(time.Minute), now.Add(time.Second), Replayed},
		{"b", now.Add(2 * time.Minute), now, Fresh},
		{"c", now.Add(time.Minute), now, Full},                     // a and b live
		{"a", now.Add(time.Hour), now.Add(time.Minute), Fresh},     // a expired: usable again
		{"c", now.Add(time.Hour), now.Add(time.Minute), Full},      // a (again) and b live
		{"c", now.Add(time.Hour), now.Add(2 * time.Minute), Fresh}, // b expired and purged
		{"b", now.Add(time.Hour), now.Add(2 * time.Minute), Full},
	}
	for i, s := range steps {
		if got := c.Use(s.id, s.exp, s.at); got != s.want {
			t.Errorf("step %d: Use(%q) = %d, want %d", i, s.id, got, s.want)
		}
	}
}

func TestUseConcurrent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := New(1000)
	var mu sync.Mutex
	fresh := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				id := fmt.Sprint(i)
				if c.Use(id, now.Add(time.Minute), now) == Fresh {
					mu.Lock()
					fresh[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 100; i++ {
		if n := fresh[fmt.Sprint(i)]; n != 1 {
			t.Errorf("id %d was fresh %d times, want 1", i, n)
		}
	}
}
