package identity

import (
	"testing"
)

// newTestIdentity creates a fresh identity in its own temporary directory.
func newTestIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}
