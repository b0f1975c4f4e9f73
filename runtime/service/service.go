// Package service joins a server, a client and a registry into one program
// that serves, advertises itself and stops cleanly:
//
//	svc := service.NewService(service.Name("greeter"))
//	greeterv1.RegisterGreeterHandler(svc.Server(), &Greeter{})
//	if err := svc.Run(); err != nil {
//		log.Fatal(err)
//	}
//
// Run starts the server, registers the service's node with a TTL and keeps
// refreshing it, then waits for SIGINT, SIGTERM or the end of the service's
// context; it deregisters before draining the server, so that clients stop
// picking the node before it stops answering.
//
// service is the convenience layer on top; it adds no behaviour to calls.
// Serving is the server package's job, calling the client's, and finding
// nodes the registry's and selector's.
package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/internal/advertise"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/cache"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// registryTimeout bounds one registry operation.
const registryTimeout = 10 * time.Second

// Service is a runnable service: a server, a client, and its registration.
type Service interface {
	// Name returns the service name.
	Name() string
	// Init applies more options. Options that shape the server or client
	// the service creates (Address, Registry, WrapHandler, WrapClient)
	// must be set before Server or Client is first called.
	Init(opts ...Option)
	// Options returns a copy of the options.
	Options() Options
	// Client returns the client, creating it on first use.
	Client() client.Client
	// Server returns the server to register handlers with, creating it on
	// first use.
	Server() server.Server
	// Broker returns the broker to publish and subscribe with, creating
	// the built-in one on first use; the service connects it on Start and
	// disconnects it on Stop. A Service is a broker.Provider, so
	// broker.RegisterSubscriber(topic, svc, handler) works.
	Broker() broker.Broker
	// Run starts the service, waits for a signal (see Signal), the end of
	// the context (see Context) or Stop, then stops it.
	Run() error
	// Start starts the server, registers the service and runs the hooks.
	// If any step fails, what was started is stopped again.
	Start() error
	// Stop deregisters the service, drains and stops the server, closes
	// the client the service created and runs the hooks. Every step runs;
	// the first error is returned.
	Stop() error
	// String returns "micro".
	String() string
}

// NewService returns a service configured by opts. It creates neither the
// server nor the client; Server, Client and Start do, when first needed.
func NewService(opts ...Option) Service {
	return &service{
		opts:   newOptions(opts...),
		nodeID: newUUID(),
		done:   make(chan struct{}),
	}
}

type service struct {
	nodeID string // random part of the node ID, stable for the service's life

	mu    sync.Mutex // guards opts, srv, cli and what they were built with
	opts  Options
	srv   server.Server // created by the service; nil until needed
	srvAs built
	cli   client.Client // created by the service; nil until needed
	cliAs built
	brk   broker.Broker // the broker in use once asked for; nil until needed
	// cache is the registry cache of the client and broker the service
	// creates: one watch finds both services and subscribers.
	cache *cache.Cache

	life  sync.Mutex // serialises Start and Stop, guards state and run
	state state
	run   *running      // what Start set up, while started
	done  chan struct{} // closed when Stop ends a started service
}

type state int

const (
	idle state = iota
	started
	stopped
)

// built records the options a server or client was created with, so that
// Start can report options set too late to have an effect.
type built struct {
	address  string
	wrappers int
}

// running is what Start set up and Stop tears down.
type running struct {
	registry registry.Registry
	server   server.Server
	service  *registry.Service // as registered, with its one node
	stop     chan struct{}     // ends the refresh loop
	stopped  chan struct{}     // closed by the refresh loop
}

func (s *service) Name() string   { return s.Options().Name }
func (s *service) String() string { return "micro" }

func (s *service) Init(opts ...Option) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applyOptions(&s.opts, opts)
}

func (s *service) Options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

func (s *service) Server() server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Server != nil {
		return s.opts.Server
	}
	if s.srv == nil {
		var opts []server.Option
		if s.opts.Address != "" {
			opts = append(opts, server.Address(s.opts.Address))
		}
		if len(s.opts.HandlerWrappers) > 0 {
			opts = append(opts, server.WithUnaryInterceptor(s.opts.HandlerWrappers...))
		}
		s.srv = server.NewServer(opts...)
		s.srvAs = built{address: s.opts.Address, wrappers: len(s.opts.HandlerWrappers)}
	}
	return s.srv
}

func (s *service) Client() client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Client != nil {
		return s.opts.Client
	}
	if s.cli == nil {
		opts := []client.Option{
			client.WithRegistry(s.opts.Registry),
			client.WithSelector(selector.NewSelector(selector.Cache(s.cacheLocked()))),
		}
		if len(s.opts.ClientWrappers) > 0 {
			opts = append(opts, client.WithUnaryInterceptor(s.opts.ClientWrappers...))
		}
		s.cli = client.NewClient(opts...)
		s.cliAs = built{wrappers: len(s.opts.ClientWrappers)}
	}
	return s.cli
}

// cacheLocked returns the registry cache of what the service creates,
// creating it if needed; s.mu held.
func (s *service) cacheLocked() *cache.Cache {
	if s.cache == nil {
		s.cache = cache.New(s.opts.Registry)
	}
	return s.cache
}

func (s *service) Broker() broker.Broker {
	s.mu.Lock()
	if s.brk != nil {
		defer s.mu.Unlock()
		return s.brk
	}
	if s.opts.Broker != nil {
		s.brk = s.opts.Broker
		s.mu.Unlock()
		return s.brk
	}
	reg, c := s.opts.Registry, s.cacheLocked()
	s.mu.Unlock()
	// Server and Client take s.mu themselves.
	b := direct.NewBroker(direct.Registry(reg), direct.Cache(c), direct.Server(s.Server()), direct.Client(s.Client()))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.brk == nil {
		s.brk = b
	}
	return s.brk
}

// usedBroker returns the broker in use, if anyone asked for one.
func (s *service) usedBroker() broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.brk
}

// checkLocked reports options that are missing or would have no effect.
func (s *service) checkLocked() error {
	o := &s.opts
	switch {
	case o.Name == "":
		return errors.New("service: no name (use service.Name)")
	case o.Server != nil && len(o.HandlerWrappers) > 0:
		return errors.New("service: WrapHandler applies to the server the service creates, not one given with service.Server; give that server the interceptors")
	case o.Client != nil && len(o.ClientWrappers) > 0:
		return errors.New("service: WrapClient applies to the client the service creates, not one given with service.Client; give that client the interceptors")
	case o.Server == nil && s.srv != nil && s.srvAs != built{o.Address, len(o.HandlerWrappers)}:
		return errors.New("service: Address or WrapHandler set after Server() created the server")
	case o.Client == nil && s.cli != nil && s.cliAs != built{wrappers: len(o.ClientWrappers)}:
		return errors.New("service: WrapClient set after Client() created the client")
	}
	return nil
}

func (s *service) Start() error {
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case started:
		return errors.New("service: already started")
	case stopped:
		return errors.New("service: cannot start again after Stop")
	}
	s.mu.Lock()
	err := s.checkLocked()
	o := s.opts
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if o.Registry == nil {
		return fmt.Errorf("service %s: no registry: %w", o.Name, o.registryErr)
	}

	for _, hook := range o.BeforeStart {
		if err := hook(); err != nil {
			return err
		}
	}
	srv := s.Server()
	if err := srv.Start(); err != nil {
		return fmt.Errorf("service %s: starting server: %w", o.Name, err)
	}
	r := &running{
		registry: o.Registry,
		server:   srv,
		service:  s.describe(&o, srv),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if err := register(o.Context, r.registry, r.service, o.RegisterTTL); err != nil {
		err = fmt.Errorf("service %s: registering with %s: %w", o.Name, r.registry, err)
		return errors.Join(err, srv.Stop())
	}
	// The broker's subscriptions are served by the server, now started.
	if b := s.usedBroker(); b != nil {
		if err := b.Connect(); err != nil {
			err = fmt.Errorf("service %s: connecting broker %s: %w", o.Name, b, err)
			return errors.Join(err, deregister(o.Context, r.registry, r.service), srv.Stop())
		}
	}
	go s.refresh(o.Context, r, o.RegisterTTL, o.RegisterInterval)
	s.run, s.state = r, started
	node := r.service.Nodes[0]
	slog.Info("service started",
		"service", o.Name, "version", o.Version,
		"node", node.ID, "address", node.Address, "listen", srv.Address(),
		"registry", r.registry.String(), "endpoints", len(r.service.Endpoints))

	for _, hook := range o.AfterStart {
		if err := hook(); err != nil {
			return errors.Join(err, s.stopLocked(o, false))
		}
	}
	return nil
}

func (s *service) Stop() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.state != started {
		return nil
	}
	return s.stopLocked(s.Options(), true)
}

// stopLocked stops a started service, with or without the stop hooks, and
// returns the first error. s.life is held.
func (s *service) stopLocked(o Options, hooks bool) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if hooks {
		for _, hook := range o.BeforeStop {
			keep(hook())
		}
	}
	r := s.run
	close(r.stop)
	<-r.stopped
	// Deregister before draining: clients stop picking the node while it
	// still answers the calls they already sent.
	if err := deregister(o.Context, r.registry, r.service); err != nil {
		keep(fmt.Errorf("service %s: deregistering from %s: %w", o.Name, r.registry, err))
	}
	// The broker drains its handlers and deliveries while the server and
	// client still work.
	if b := s.usedBroker(); b != nil {
		if err := b.Disconnect(); err != nil {
			keep(fmt.Errorf("service %s: disconnecting broker %s: %w", o.Name, b, err))
		}
	}
	if err := r.server.Stop(); err != nil {
		keep(fmt.Errorf("service %s: stopping server: %w", o.Name, err))
	}
	// Handlers may call out while draining; only now close the connections
	// of the client the service created. A client given with Client is the
	// caller's to close.
	s.mu.Lock()
	cli := s.cli
	s.mu.Unlock()
	if c, ok := cli.(io.Closer); ok {
		if err := c.Close(); err != nil {
			keep(fmt.Errorf("service %s: closing client: %w", o.Name, err))
		}
	}
	// Its client and broker are closed: so is their registry cache.
	s.mu.Lock()
	rc := s.cache
	s.cache = nil
	s.mu.Unlock()
	if rc != nil {
		rc.Close()
	}
	// The default registry the service made is its to close (an mDNS one
	// sends its goodbyes and stops listening); a given one is the caller's.
	if c, ok := o.created.(io.Closer); ok && o.Registry == o.created {
		if err := c.Close(); err != nil {
			keep(fmt.Errorf("service %s: closing registry: %w", o.Name, err))
		}
	}
	slog.Info("service stopped", "service", o.Name, "node", r.service.Nodes[0].ID)
	if hooks {
		for _, hook := range o.AfterStop {
			keep(hook())
		}
	}
	s.run, s.state = nil, stopped
	close(s.done)
	return first
}

func (s *service) Run() error {
	o := s.Options()
	ctx, stopSignals := o.Context, context.CancelFunc(func() {})
	if o.Signal {
		// Installed before Start, so a signal that arrives while starting
		// is not lost and does not kill the process.
		ctx, stopSignals = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	}
	defer stopSignals()
	if err := s.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		// Restore the default handling: a second signal ends the process
		// at once instead of waiting for the graceful stop.
		stopSignals()
		slog.Info("service stopping", "service", o.Name, "reason", context.Cause(ctx))
		return s.Stop()
	case <-s.done:
		return nil // stopped by Stop, which reported its own error
	}
}

// refresh re-registers every interval until r.stop is closed.
func (s *service) refresh(ctx context.Context, r *running, ttl, interval time.Duration) {
	defer close(r.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := register(ctx, r.registry, r.service, ttl); err != nil {
				slog.Warn("service: refreshing registration failed",
					"service", r.service.Name, "registry", r.registry.String(), "error", err)
			}
		}
	}
}

// describe returns the registry entry for the service: its endpoints, read
// from the server's method tables, and one node at the advertised address.
func (s *service) describe(o *Options, srv server.Server) *registry.Service {
	var endpoints []*registry.Endpoint
	for _, desc := range srv.Services() {
		for _, m := range desc.Methods {
			if m.Method == nil {
				continue
			}
			endpoints = append(endpoints, &registry.Endpoint{
				Name:     m.Method.Procedure,
				Metadata: map[string]string{"stream": m.Method.StreamType.String()},
			})
		}
	}
	return &registry.Service{
		Name:      o.Name,
		Version:   o.Version,
		Metadata:  o.Metadata,
		Endpoints: endpoints,
		Nodes: []*registry.Node{{
			ID:       o.Name + "-" + s.nodeID,
			Address:  advertised(o.Registry, srv.Address()),
			Metadata: map[string]string{"protocol": "grpc", "transport": "http2"},
		}},
	}
}

// advertised is the address to register for a server listening on listen:
// as it is for a registry that advertises each interface's own addresses
// (mDNS), otherwise one concrete address.
func advertised(r registry.Registry, listen string) string {
	if ia, ok := r.(registry.InterfaceAdvertiser); ok && ia.AdvertisesInterfaceAddresses() {
		return listen
	}
	return advertise.Address(listen)
}

// register and deregister outlive the service's context: Run stops because
// that context ended, and must still be able to deregister.
func register(ctx context.Context, r registry.Registry, s *registry.Service, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	defer cancel()
	return r.Register(ctx, s, registry.RegisterTTL(ttl))
}

func deregister(ctx context.Context, r registry.Registry, s *registry.Service) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	defer cancel()
	return r.Deregister(ctx, s)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
