package migrate

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/README":     {Data: []byte("x")},
	}
	ms, err := Load(ok, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Body != "B" || ms[0].Name != "0001_a.sql" {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"empty":     {},
		"duplicate": {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"no number": {"m/init.sql": {}},
		"zero":      {"m/0000_a.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
