// Package registry is where services announce their nodes and clients find
// them.
//
// Registry is the seam: an in-memory implementation lives in
// registry/memory and a multicast DNS one in registry/mdns; etcd and others
// plug in behind the same interface. An implementation makes itself known
// by name with RegisterFactory from its package's init, and New makes one
// by name: the service asks for the one -registry or MICRO_REGISTRY names,
// mDNS by default. registrytest is the suite every implementation passes.
// registry does not pick nodes for calls; the selector does.
package registry

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by GetService when no node of the service is known.
var ErrNotFound = errors.New("registry: service not found")

// ErrWatcherStopped is returned by Watcher.Next once the watch has ended:
// after Stop, the end of the watch's context, or the registry's Close.
var ErrWatcherStopped = errors.New("registry: watcher stopped")

// ErrClosed is wrapped by the errors a Registry's methods return after
// Close.
var ErrClosed = errors.New("registry: closed")

// Registry registers services and answers lookups.
type Registry interface {
	// Register adds or refreshes the service's nodes. A node not
	// refreshed within ttl disappears; ttl 0 keeps it until deregistered.
	Register(ctx context.Context, s *Service, ttl time.Duration) error
	// Deregister removes the service's nodes.
	Deregister(ctx context.Context, s *Service) error
	// GetService returns every version of the named service with its nodes,
	// or ErrNotFound.
	GetService(ctx context.Context, name string) ([]*Service, error)
	// ListServices returns every known service.
	ListServices(ctx context.Context) ([]*Service, error)
	// Watch reports changes to the named service, or to every service when
	// service is "", until Stop is called or ctx ends.
	Watch(ctx context.Context, service string) (Watcher, error)
	// String names the implementation, e.g. "memory" or "mdns".
	String() string
	// Close withdraws the nodes registered through this registry as far
	// as the implementation can (mDNS sends its goodbyes), ends every
	// watch (a blocked or later Watcher.Next returns ErrWatcherStopped),
	// and releases the registry's sockets, connections and goroutines.
	// Every later method call returns an error wrapping ErrClosed. A
	// second Close returns nil.
	Close() error
}

// Service is a named, versioned service and the nodes serving it.
type Service struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Endpoints []*Endpoint       `json:"endpoints,omitempty"`
	Nodes     []*Node           `json:"nodes,omitempty"`
}

// Node is one instance of a service.
type Node struct {
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Endpoint is one RPC method a service offers.
type Endpoint struct {
	// Name is the method's procedure path, e.g. "/greeter.v1.Greeter/SayHello".
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Action says what happened to a service in a watch Result.
type Action string

// Watch actions.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Result is one change seen by a Watcher. Service holds the nodes that were
// created, updated or deleted.
type Result struct {
	Action  Action
	Service *Service
}

// Watcher delivers changes.
type Watcher interface {
	// Next blocks until the next change, or returns ErrWatcherStopped.
	Next() (*Result, error)
	// Stop ends the watch; a blocked Next returns.
	Stop()
}
