package registry

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// envRegistry names the environment variable that chooses the registry
// implementation FromEnv returns, e.g. MICRO_REGISTRY=memory.
const envRegistry = "MICRO_REGISTRY"

// defaultName is the implementation FromEnv returns when MICRO_REGISTRY is
// unset: multicast DNS, which needs no server.
const defaultName = "mdns"

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
// registers "memory", registry/mdns registers "mdns"). With its error, New
// returns a Registry whose every method returns that error, as FromEnv does.
func New(name string) (Registry, error) {
	factoriesMu.RLock()
	f := factories[name]
	factoriesMu.RUnlock()
	if f == nil {
		err := fmt.Errorf("registry: %q is not a known registry (known: %s); a plug-in registers itself when its package is imported",
			name, strings.Join(Names(), ", "))
		return unavailable{name, err}, err
	}
	r, err := f()
	if err != nil {
		err = fmt.Errorf("registry: creating %q: %w", name, err)
		return unavailable{name, err}, err
	}
	return r, nil
}

// FromEnv returns New of the implementation named by the MICRO_REGISTRY
// environment variable, or of defaultName when it is unset or empty.
//
// When the variable names no registered implementation (a typo, or a
// plug-in whose package is not imported), or the implementation cannot be
// created, FromEnv returns the error together with a Registry whose every
// method returns that error, so that a program that goes on anyway fails
// at its first lookup with the same explanation rather than with a
// nil-pointer panic.
func FromEnv() (Registry, error) {
	name := os.Getenv(envRegistry)
	if name == "" {
		name = defaultName
	}
	factoriesMu.RLock()
	_, known := factories[name]
	factoriesMu.RUnlock()
	if !known {
		err := fmt.Errorf("registry: %s=%q is not a known registry (known: %s); a plug-in registers itself when its package is imported",
			envRegistry, name, strings.Join(Names(), ", "))
		return unavailable{name, err}, err
	}
	return New(name)
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
