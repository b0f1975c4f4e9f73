// Package selector picks the node a call goes to.
//
// A Selector answers "which node of service S next?", skipping nodes the call
// has already tried, and hears back how each call went so it can avoid nodes
// that fail. The default selector reads each service's nodes from a cache
// that one watch of the registry keeps current, shared by every selector and
// broker of the registry in the process, so choosing a node costs no
// registry lookup, and picks among them with a Strategy: Random (the
// default), RoundRobin, ConsistentHash or LeastRequest.
//
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
	// it ends. The node is shared: do not modify it.
	Select(ctx context.Context, service string, exclude []string) (*registry.Node, error)
	// Mark reports the outcome of a call to node; err is nil on success or
	// when the failure was the call's own (not the node's).
	Mark(service string, node *registry.Node, err error)
	// Close releases the selector's resources (watchers, caches).
	Close() error
	// String names the strategy, e.g. "random".
	String() string
}

// Strategy is how the default selector chooses among the usable nodes of a
// service. Every strategy skips excluded nodes and, while another node is
// left, nodes ejected after a failure.
type Strategy uint8

const (
	// Random picks a node uniformly at random. It is the default.
	Random Strategy = iota
	// RoundRobin takes a service's nodes in turn, one per Select.
	RoundRobin
	// ConsistentHash sends calls with the same key (see WithHashKey) to the
	// same node while the service's nodes stay the same; when a node
	// leaves, only its keys move. Calls without a key are spread at random.
	ConsistentHash
	// LeastRequest picks the node with fewer calls in flight of two chosen
	// at random (the "power of two choices"). A call is in flight from
	// Select until Mark.
	LeastRequest
)

// String returns the strategy's name, e.g. "roundrobin".
func (s Strategy) String() string {
	switch s {
	case Random:
		return "random"
	case RoundRobin:
		return "roundrobin"
	case ConsistentHash:
		return "consistenthash"
	case LeastRequest:
		return "leastrequest"
	}
	return "unknown"
}

// options are the settings of a selector.
type options struct {
	strategy Strategy
}

// Option configures a selector.
type Option func(*options)

// WithStrategy sets how the selector chooses among a service's nodes;
// Random by default.
func WithStrategy(s Strategy) Option { return func(o *options) { o.strategy = s } }

type hashKey struct{}

// WithHashKey returns a copy of ctx carrying key, which the ConsistentHash
// strategy uses to choose a node: calls with the same key go to the same
// node. Other strategies ignore it.
func WithHashKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, hashKey{}, key)
}
