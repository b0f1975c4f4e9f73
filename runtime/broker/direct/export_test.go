package direct

import (
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
)

// AddressOf returns the address b advertises its subscriptions at, once
// connected.
func AddressOf(b broker.Broker) string { return b.(*directBroker).Address() }

// StatsOf returns b's counters.
func StatsOf(b broker.Broker) brokerkit.Stats { return b.(*directBroker).Stats() }

// ServiceName returns the registry name of topic's subscriptions.
func ServiceName(topic string) string { return serviceName(topic) }

// WithRegisterInterval sets how often subscriptions' registrations are
// refreshed (30 s by default).
func WithRegisterInterval(d time.Duration) Option {
	return func(o *options) { o.registerInterval = d }
}
