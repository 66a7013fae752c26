package storetest_test

import (
	"testing"

	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

// testMyStoreConformance is the test a storage backend adds to its own
// package, named TestConformance there, with memory.New replaced by a
// constructor of a new, empty store of the backend (registering its Close
// with t.Cleanup). Run checks the storage.Store contract and RunAccounts the
// storage.AccountStore one, which the console's built-in sign-in needs; a
// backend that replicas share also runs RunShared with two stores on one
// database.
func testMyStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		return memory.New()
	})
	storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
		return memory.New()
	})
}

// TestOwnStoreExample runs the example's test, so that it stays correct.
func TestOwnStoreExample(t *testing.T) { testMyStoreConformance(t) }

// Run the suite against your own Store, from a test in its package. Each
// subtest gets a fresh store from the constructor; the suite never sleeps
// and never reads the clock. An example cannot take a *testing.T, so this
// one is compiled only: testMyStoreConformance in this file is the test
// itself, run by go test against the in-memory store.
func Example_ownStore() {
	// In mystore_test.go:
	//
	//	func TestConformance(t *testing.T) {
	//		storetest.Run(t, func(t *testing.T) storage.Store {
	//			s, err := mystore.Open(t.Context(), t.TempDir())
	//			if err != nil {
	//				t.Fatal(err)
	//			}
	//			t.Cleanup(func() { s.Close() })
	//			return s
	//		})
	//	}
	//
	//	func TestAccountsConformance(t *testing.T) {
	//		storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
	//			... the same, for the console's users and sessions
	//		})
	//	}
}
