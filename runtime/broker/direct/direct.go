// Package direct is the built-in broker.Broker: publish/subscribe with
// nothing to install, riding on the service registry and the RPC transport.
//
// Each subscription is a node in the registry under the service name
// "micro.broker.<topic>" (see ServiceName), version "v1", at the address of
// the server that serves the broker's Deliver RPC (micro.broker.v1.Broker,
// defined in internal/brokerpb/broker.proto), with node metadata "topic",
// "queue" (its queue group, when it has one) and "max-inflight". A
// publisher finds the subscriptions of the topics it publishes to in a
// registry cache that one registry watch keeps current (package
// registry/cache, the one the RPC selector reads; a service gives its
// client and its broker the same one), chooses its targets there
// (every group-less subscription, one member per queue group) and calls
// Deliver on each, over the client's pooled HTTP/2 connection to that
// address. Messages bound for one subscription while a delivery to it is in
// flight travel together in the next call, so that a message costs about
// one RPC at rest and a fraction of one under load.
//
// The registered address is the one the service registers for its own
// node: the server's listen address, with an unspecified host replaced by
// the host's first non-loopback IPv4 address, so that other hosts can
// reach it; Advertise overrides it.
//
// A subscription exists in the registry only while its broker is
// connected: Connect starts serving and registers the subscriptions made
// so far, Unsubscribe and Disconnect deregister them before they stop
// answering. Registrations carry a TTL and are refreshed; a subscriber that
// dies without deregistering is found unreachable by publishers, who pass
// over it (a queue group's messages go to another member; a group-less
// subscription's fail, reported to the publisher) until the TTL removes it.
//
// A publication to a topic without subscribers is dropped (or fails, with
// broker.WithRequireSubscribers). The first for each topic is logged with
// log/slog at INFO, naming the registry asked: subscribers registered in
// another registry, such as another process's memory registry, are
// invisible.
//
// Semantics are package broker's, checked by broker/brokertest.
package direct

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/advertise"
	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/internal/cache"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/brokerpb"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// servicePrefix starts the registry service name of every topic.
const servicePrefix = "micro.broker."

// serviceName returns the registry service name under which topic's
// subscriptions are registered: "micro.broker.<topic>".
func serviceName(topic string) string { return servicePrefix + topic }

// Registry node metadata of a subscription.
const (
	metaTopic       = "topic"
	metaQueue       = "queue"
	metaMaxInFlight = "max-inflight"
)

const (
	registryVersion = "v1"
	registryTimeout = 10 * time.Second
)

// directBroker is the built-in broker; it is safe for concurrent use.
type directBroker struct {
	opts   options
	pub    *engine.Publisher
	topics *topics // subscriptions of the topics published to, from the registry cache
	cli    client.Client

	mu      sync.Mutex // guards the fields below and serialises Connect and Disconnect
	state   state
	srv     server.Server
	handled bool   // the Deliver handler is registered on opts.server
	addr    string // advertised
	stop    chan struct{}
	stopped chan struct{}
	subs    map[string]*subscriber // every subscription not yet unsubscribed

	// served holds the subscriptions deliveries may reach, by ID, until
	// they are closed; the Deliver handler reads it on every call.
	served sync.Map
}

type state int

const (
	idle state = iota
	connected
	disconnected
)

// NewBroker returns a broker. It serves nothing until Connect.
func NewBroker(opts ...Option) broker.Broker {
	o := options{
		address:          ":0",
		registerTTL:      defaultRegisterTTL,
		registerInterval: defaultRegisterInterval,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.registry == nil {
		o.registry = memory.NewRegistry()
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	o.logger = o.logger.With("broker", "direct")
	b := &directBroker{opts: o, cli: o.client, subs: map[string]*subscriber{}}
	if b.cli == nil {
		b.cli = client.NewClient()
	}
	b.topics = newTopics(cache.Shared(o.registry), o.logger)
	b.pub = engine.NewPublisher(engine.Config{
		Name:     "direct",
		Log:      o.logger,
		Link:     link{svc: brokerpb.NewBrokerService("micro.broker", b.cli)},
		Resolve:  b.topics.targets,
		Strategy: selector.LeastRequest,
		MaxAsync: o.maxAsync,
	})
	return b
}

// String returns "direct".
func (b *directBroker) String() string { return "direct" }

// Stats returns the broker's publishing counters.
func (b *directBroker) Stats() brokerkit.Stats { return b.pub.Stats() }

// Address returns the address registered for the broker's subscriptions,
// once connected.
func (b *directBroker) Address() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Connect starts serving deliveries (on the broker's own server, started
// now, or on the one given with Server, which must have started) and
// registers the subscriptions made so far.
func (b *directBroker) Connect() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case connected:
		return nil
	case disconnected:
		return broker.ErrDisconnected
	}
	srv := b.opts.server
	if srv == nil {
		srv = server.NewServer(server.WithAddress(b.opts.address))
	}
	if srv != b.opts.server || !b.handled {
		if err := brokerpb.RegisterBrokerHandler(srv, deliverHandler{b}); err != nil {
			return fmt.Errorf("broker/direct: serving deliveries: %w", err)
		}
		b.handled = srv == b.opts.server
	}
	if b.opts.server == nil {
		if err := srv.Start(); err != nil {
			return fmt.Errorf("broker/direct: %w", err)
		}
	}
	addr := b.opts.advertise
	if addr == "" {
		listen := srv.Address()
		if _, port, err := net.SplitHostPort(listen); err != nil || port == "0" || port == "" {
			return fmt.Errorf("broker/direct: the server listens on %q: connect once it has started", listen)
		}
		addr = advertise.Address(listen)
	}
	b.srv, b.addr = srv, addr
	var done []*subscriber
	for _, s := range b.subs {
		if err := b.register(s); err != nil {
			for _, d := range done {
				b.deregister(d)
			}
			if b.opts.server == nil {
				srv.Stop()
			}
			b.srv, b.addr = nil, ""
			return err
		}
		done = append(done, s)
	}
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go b.refresh(b.stop, b.stopped)
	b.state = connected
	return nil
}

// Disconnect deregisters the broker's subscriptions, waits for their
// handler calls and for its asynchronous publications, and stops what the
// broker started.
func (b *directBroker) Disconnect() error {
	b.mu.Lock()
	if b.state == disconnected {
		b.mu.Unlock()
		return nil
	}
	was := b.state
	b.state = disconnected
	subs := b.subs
	b.subs = map[string]*subscriber{}
	b.mu.Unlock()

	var errs []error
	if was == connected {
		close(b.stop)
		<-b.stopped
		for _, s := range subs {
			if err := b.deregister(s); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, s := range subs {
		s.close()
	}
	b.pub.Close()
	b.topics.close()
	if was == connected && b.opts.server == nil {
		if err := b.srv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("broker/direct: stopping server: %w", err))
		}
	}
	if b.opts.client == nil && b.cli != nil {
		b.cli.Close()
	}
	return errors.Join(errs...)
}

// Publish implements broker.Broker.
func (b *directBroker) Publish(ctx context.Context, topic string, msg *broker.Message, opts ...broker.PublishOption) error {
	return b.pub.Publish(ctx, topic, msg, opts)
}

// Subscribe implements broker.Broker. Once the broker is connected, the
// subscription is registered before Subscribe returns; publishers see it
// as soon as their registry watch does.
func (b *directBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	sub, err := engine.Subscribe(b.opts.logger, topic, h, opts)
	if err != nil {
		return nil, err
	}
	s := &subscriber{b: b, sub: sub}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == disconnected {
		return nil, broker.ErrDisconnected
	}
	b.served.Store(s.sub.ID, s)
	if b.state == connected {
		if err := b.register(s); err != nil {
			b.served.Delete(s.sub.ID)
			return nil, err
		}
	}
	b.subs[s.sub.ID] = s
	return s, nil
}

func (b *directBroker) lookup(id string) *engine.Subscription {
	if s, ok := b.served.Load(id); ok {
		return s.(*subscriber).sub
	}
	return nil
}

// entry is the registry entry of s; b.addr must be set.
func (b *directBroker) entry(s *subscriber) *registry.Service {
	sub := s.sub
	md := map[string]string{metaTopic: sub.Topic, metaMaxInFlight: strconv.Itoa(sub.Opts.MaxInFlight)}
	if sub.Opts.Queue != "" {
		md[metaQueue] = sub.Opts.Queue
	}
	return &registry.Service{
		Name:    serviceName(sub.Topic),
		Version: registryVersion,
		Nodes:   []*registry.Node{{ID: sub.ID, Address: b.addr, Metadata: md}},
	}
}

func (b *directBroker) register(s *subscriber) error {
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	if err := b.opts.registry.Register(ctx, b.entry(s), b.opts.registerTTL); err != nil {
		return fmt.Errorf("broker/direct: registering subscription to %q with %s: %w", s.sub.Topic, b.opts.registry, err)
	}
	return nil
}

func (b *directBroker) deregister(s *subscriber) error {
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	if err := b.opts.registry.Deregister(ctx, b.entry(s)); err != nil {
		return fmt.Errorf("broker/direct: deregistering subscription to %q from %s: %w", s.sub.Topic, b.opts.registry, err)
	}
	return nil
}

// refresh re-registers the subscriptions every interval until stop closes.
func (b *directBroker) refresh(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(b.opts.registerInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		subs := make([]*subscriber, 0, len(b.subs))
		for _, s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.Unlock()
		for _, s := range subs {
			if err := b.register(s); err != nil {
				b.opts.logger.Warn("broker/direct: refreshing a registration failed", "topic", s.sub.Topic, "subscription", s.sub.ID, "err", err)
			}
		}
	}
}

// subscriber is a subscription of the broker.
type subscriber struct {
	b    *directBroker
	sub  *engine.Subscription
	once sync.Once
}

func (s *subscriber) Topic() string { return s.sub.Topic }

// Unsubscribe deregisters the subscription, then refuses what still
// arrives and waits for its handler calls.
func (s *subscriber) Unsubscribe() error {
	b := s.b
	b.mu.Lock()
	_, mine := b.subs[s.sub.ID]
	delete(b.subs, s.sub.ID)
	registered := mine && b.state == connected
	b.mu.Unlock()
	var err error
	if registered {
		err = b.deregister(s)
	}
	s.close()
	return err
}

func (s *subscriber) close() {
	s.once.Do(func() {
		s.sub.Close()
		s.b.served.Delete(s.sub.ID)
	})
}
