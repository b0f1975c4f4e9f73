package registry

import (
	"fmt"
	"os"
	"slices"
	"sync"
)

// EnvRegistry names the environment variable that chooses the registry
// implementation FromEnv returns, e.g. MICRO_REGISTRY=memory.
const EnvRegistry = "MICRO_REGISTRY"

// DefaultName is the implementation FromEnv returns when EnvRegistry is
// unset: multicast DNS, which needs no server.
const DefaultName = "mdns"

// Factory creates a registry.
type Factory func() (Registry, error)

var (
	factoriesMu sync.RWMutex
	factories   = map[string]Factory{}
)

// RegisterFactory makes an implementation available to New under name.
// Implementations call it from init, so that importing their package, even
// for its side effects only, is enough. It panics if name is empty, f is
// nil or name is taken.
func RegisterFactory(name string, f Factory) {
	if name == "" || f == nil {
		panic("registry: RegisterFactory needs a name and a factory")
	}
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("registry: RegisterFactory called twice for %q", name))
	}
	factories[name] = f
}

// New returns a new registry of the implementation registered as name.
// The package of the implementation must be imported (registry/memory
// registers "memory", registry/mdns registers "mdns").
func New(name string) (Registry, error) {
	factoriesMu.RLock()
	f := factories[name]
	factoriesMu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("registry: no implementation named %q (known: %v); is its package imported?", name, Names())
	}
	r, err := f()
	if err != nil {
		return nil, fmt.Errorf("registry: creating %q: %w", name, err)
	}
	return r, nil
}

// FromEnv returns New of the implementation named by the MICRO_REGISTRY
// environment variable, or of DefaultName when it is unset or empty.
func FromEnv() (Registry, error) {
	name := os.Getenv(EnvRegistry)
	if name == "" {
		name = DefaultName
	}
	return New(name)
}

// Names returns the names of the registered implementations, sorted.
func Names() []string {
	factoriesMu.RLock()
	defer factoriesMu.RUnlock()
	names := make([]string, 0, len(factories))
	for name := range factories {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
