package compress

import "testing"

// KeepRegistry restores the registry as it is now when t ends, so a test
// may register compressors of its own.
func KeepRegistry(t testing.TB) {
	saved := current.Load()
	t.Cleanup(func() {
		registerMu.Lock()
		current.Store(saved)
		registerMu.Unlock()
	})
}
