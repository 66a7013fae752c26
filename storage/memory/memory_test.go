package memory_test

import (
	"testing"

	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return memory.New() })
}

func TestAccountsConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore { return memory.New() })
}
