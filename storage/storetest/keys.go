package storetest

import (
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

var keyTests = []test{
	{"Empty", testKeysEmpty},
	{"AddRetiresAndLists", testKeysAdd},
	{"CopiesInAndOut", testKeysCopies},
	{"Delete", testKeysDelete},
	{"DeleteAbsent", testKeysDeleteAbsent},
}

func newKey(alg string, createdAt time.Time) *storage.KeyRecord {
	return &storage.KeyRecord{ID: "kid-" + randomHex(8), Algorithm: alg, Private: randomBytes(48), CreatedAt: createdAt}
}

func keyID(k *storage.KeyRecord) string { return k.ID }

// testKeysEmpty: a new store has no keys.
func testKeysEmpty(t *testing.T, f *fixture) {
	if ks := f.keys(); len(ks) != 0 {
		t.Errorf("ListKeys of an empty store = %d keys, want 0", len(ks))
	}
}

// testKeysAdd: AddKey stores the key as the active one and retires at its
// CreatedAt every key that was active; ListKeys lists every key, newest
// first, with every field.
func testKeysAdd(t *testing.T, f *fixture) {
	k1 := newKey("ES256", base.Add(fine))
	k2 := newKey("EdDSA", base.Add(time.Hour+fine))
	k3 := newKey("ES256", base.Add(2*time.Hour))
	checkAllSet(t, "key", k1, "RetiredAt")
	want1, want2, want3 := clone(k1), clone(k2), clone(k3)

	f.must(f.s.AddKey(f.ctx, k1), "AddKey(k1)")
	ks := f.keys()
	checkIDs(t, "ListKeys after k1", ids(ks, keyID), []string{k1.ID})
	if len(ks) == 1 {
		checkEqual(t, "k1", ks[0], want1)
	}

	f.must(f.s.AddKey(f.ctx, k2), "AddKey(k2)")
	want1.RetiredAt = k2.CreatedAt
	ks = f.keys()
	checkIDs(t, "ListKeys after k2", ids(ks, keyID), []string{k2.ID, k1.ID})
	if len(ks) == 2 {
		checkEqual(t, "k2, the active key", ks[0], want2)
		checkEqual(t, "k1, retired by k2", ks[1], want1)
	}

	f.must(f.s.AddKey(f.ctx, k3), "AddKey(k3)")
	want2.RetiredAt = k3.CreatedAt
	ks = f.keys()
	checkIDs(t, "ListKeys after k3", ids(ks, keyID), []string{k3.ID, k2.ID, k1.ID})
	if len(ks) == 3 {
		checkEqual(t, "k3, the active key", ks[0], want3)
		checkEqual(t, "k2, retired by k3", ks[1], want2)
		checkEqual(t, "k1, retired by k2 and not again by k3", ks[2], want1)
	}
	active := 0
	for _, k := range ks {
		if k.RetiredAt.IsZero() {
			active++
		}
	}
	if active != 1 {
		t.Errorf("%d active keys, want 1", active)
	}
}

// testKeysCopies: neither the caller's key nor a listed key aliases stored
// state.
func testKeysCopies(t *testing.T, f *fixture) {
	k := newKey("EdDSA", base)
	want := clone(k)
	f.must(f.s.AddKey(f.ctx, k), "AddKey")
	if scribble(k) == 0 {
		t.Fatal("fixture key has no bytes to scribble on")
	}
	ks := f.keys()
	if len(ks) != 1 {
		t.Fatalf("ListKeys = %d keys, want 1", len(ks))
	}
	checkEqual(t, "key after the caller changed its record", ks[0], want)
	scribble(ks[0])
	checkEqual(t, "key after the caller changed a listed record", f.keys()[0], want)
}

// testKeysDelete: DeleteKey removes exactly that key, active or retired.
func testKeysDelete(t *testing.T, f *fixture) {
	k1 := newKey("ES256", base)
	k2 := newKey("ES256", base.Add(time.Hour))
	k3 := newKey("ES256", base.Add(2*time.Hour))
	for _, k := range []*storage.KeyRecord{k1, k2, k3} {
		f.must(f.s.AddKey(f.ctx, k), "AddKey")
	}
	f.must(f.s.DeleteKey(f.ctx, k2.ID), "DeleteKey of a retired key")
	checkIDs(t, "ListKeys after deleting k2", ids(f.keys(), keyID), []string{k3.ID, k1.ID})
	wantErr(t, f.s.DeleteKey(f.ctx, k2.ID), storage.ErrNotFound, "DeleteKey of a deleted key")
	f.must(f.s.DeleteKey(f.ctx, k3.ID), "DeleteKey of the active key")
	ks := f.keys()
	checkIDs(t, "ListKeys after deleting k3", ids(ks, keyID), []string{k1.ID})
	if len(ks) == 1 {
		checkTime(t, "RetiredAt of the remaining key", ks[0].RetiredAt, k2.CreatedAt)
	}
}

// testKeysDeleteAbsent: DeleteKey of an unknown key is ErrNotFound.
func testKeysDeleteAbsent(t *testing.T, f *fixture) {
	k := newKey("ES256", base)
	f.must(f.s.AddKey(f.ctx, k), "AddKey")
	wantErr(t, f.s.DeleteKey(f.ctx, "no-such-key"), storage.ErrNotFound, "DeleteKey of an unknown key")
	checkIDs(t, "ListKeys", ids(f.keys(), keyID), []string{k.ID})
}
