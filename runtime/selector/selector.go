// Package selector picks the node a call goes to.
//
// A Selector answers "which node of service S next?", skipping nodes the call
// has already tried, and hears back how each call went so it can avoid nodes
// that fail. The default picks at random among the nodes the registry knows.
// selector does not dial or call; the client does.
package selector

import (
	"context"
	"errors"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// ErrNoneAvailable is returned when every node of a service was excluded or
// none is known.
var ErrNoneAvailable = errors.New("selector: no node available")

// Selector picks nodes.
type Selector interface {
	// Select returns a node of service whose address is not in exclude.
	// Every node returned must be reported back with Mark once the call to
	// it ends.
	Select(ctx context.Context, service string, exclude []string) (*registry.Node, error)
	// Mark reports the outcome of a call to node; err is nil on success or
	// when the failure was the call's own (not the node's).
	Mark(service string, node *registry.Node, err error)
	// Close releases the selector's resources (watchers, caches).
	Close() error
	// String names the strategy, e.g. "random".
	String() string
}
