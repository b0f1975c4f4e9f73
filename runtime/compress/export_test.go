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

// Names returns the registered names in the order they were first
// registered: "gzip" first.
func Names() []string { return append([]string(nil), current.Load().names...) }
