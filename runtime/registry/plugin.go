package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Factory creates a registry that talks to the registry server at address
// (MICRO_REGISTRY_ADDRESS), or to its default when address is "". An
// implementation without a server refuses a non-empty address.
type Factory func(address string) (Registry, error)

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

// New returns a new registry of the implementation registered as name,
// talking to the registry server at address ("" for the implementation's
// default). The package of the implementation must be imported
// (registry/memory registers "memory", registry/mdns registers "mdns").
//
// When name is not registered (a typo, or a plug-in whose package is not
// imported), or the implementation cannot be created, New returns the
// error together with a Registry whose every method returns that error
// (but Close, which returns nil), so that a program that goes on anyway
// fails at its first lookup with the same explanation rather than with a
// nil-pointer panic.
func New(name, address string) (Registry, error) {
	factoriesMu.RLock()
	f := factories[name]
	factoriesMu.RUnlock()
	if f == nil {
		err := fmt.Errorf("registry: %q is not a known registry (known: %s); a plug-in registers itself when its package is imported",
			name, strings.Join(names(), ", "))
		return unavailable{name, err}, err
	}
	r, err := f(address)
	if err != nil {
		err = fmt.Errorf("registry: creating %q: %w", name, err)
		return unavailable{name, err}, err
	}
	return r, nil
}

// unavailable is the Registry New returns with its error: it fails every
// call with that error, but Close, which has nothing to release.
type unavailable struct {
	name string
	err  error
}

func (u unavailable) Register(context.Context, *Service, time.Duration) error { return u.err }
func (u unavailable) Deregister(context.Context, *Service) error              { return u.err }
func (u unavailable) GetService(context.Context, string) ([]*Service, error)  { return nil, u.err }
func (u unavailable) ListServices(context.Context) ([]*Service, error)        { return nil, u.err }
func (u unavailable) Watch(context.Context, string) (Watcher, error)          { return nil, u.err }
func (u unavailable) String() string                                          { return u.name + " (unavailable)" }
func (u unavailable) Close() error                                            { return nil }

// names returns the names of the registered implementations, sorted.
func names() []string {
	factoriesMu.RLock()
	defer factoriesMu.RUnlock()
	return slices.Sorted(maps.Keys(factories))
}
