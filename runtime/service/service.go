// Package service joins a server, a client and a registry into one program
// that serves, advertises itself and stops cleanly:
//
//	svc := service.NewService(service.WithName("greeter"))
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
// Every service also serves the gRPC health checking protocol and server
// reflection (turn them off with WithHealth and WithReflection), so that
// grpc-health-probe, load balancers and grpcurl work with nothing
// configured. They are served on the server without the service's
// interceptors, like the built-in broker's deliveries, and are not
// advertised in the registry. The health statuses follow the service's
// life: the server as a whole ("") and every service registered on the
// server are SERVING once Start has registered the node, and everything is
// NOT_SERVING the moment Stop begins, before deregistering and draining,
// while the server still answers. Stop also ends open Watch calls (after
// they are sent NOT_SERVING) so that they do not hold the drain open for
// its grace period. Set statuses of your own through Health once the
// service has started, e.g. in a WithAfterStart hook.
//
// service is the convenience layer on top; it adds no behaviour to calls.
// Serving is the server package's job, calling the client's, and finding
// nodes the registry's and selector's.
package service

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/internal/advertise"
	"github.com/protoc-gen-micro/micro/internal/chain"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/accesslog"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/reflection"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// registryTimeout bounds one registry operation.
const registryTimeout = 10 * time.Second

// Service is a runnable service: a server, a client, and its registration.
type Service interface {
	// Name returns the service name.
	Name() string
	// Init applies more options. Options that shape the server or client
	// (WithAddress, WithRegistry, WithTLSConfig, WithInterceptors) must be
	// set before Server or Client is first called.
	Init(opts ...Option)
	// Registry returns the registry the service advertises itself in and
	// its client finds services in.
	Registry() registry.Registry
	// Client returns the client, creating it on first use.
	Client() client.Client
	// Server returns the server to register handlers with, creating it on
	// first use.
	Server() server.Server
	// Broker returns the broker to publish and subscribe with, creating
	// the built-in one on first use; the service connects it on Start and
	// disconnects it on Stop.
	Broker() broker.Broker
	// Run starts the service, waits for a signal (see WithSignal), the end
	// of the context (see WithContext) or Stop, then stops it.
	Run() error
	// Start starts the server, registers the service and runs the hooks.
	// If any step fails, what was started is stopped again.
	Start() error
	// Health returns the statuses the service's health server reports;
	// see the package documentation for how they follow Start and Stop.
	Health() *health.Server
	// Stop deregisters the service, drains and stops the server, closes
	// the client the service created and runs the hooks. Every step runs;
	// the first error is returned.
	Stop() error
}

// NewService returns a service configured by opts. It creates neither the
// server nor the client; Server, Client and Start do, when first needed.
func NewService(opts ...Option) Service {
	hs := health.NewServer()
	hs.SetServingStatus("", health.NotServing) // until Start has registered the node
	s := &service{
		opts:   newOptions(opts...),
		nodeID: newUUID(),
		done:   make(chan struct{}),
		health: hs,
	}
	s.opts.nodeID = s.nodeID
	return s
}

type service struct {
	nodeID string // random part of the node ID, stable for the service's life

	mu   sync.Mutex // guards opts, srv, cli and what they were built with
	opts options
	// resolved says opts were completed from the flags, the environment
	// and the defaults since the last Init.
	resolved bool
	srv      server.Server // created by the service; nil until needed
	cli      client.Client // created by the service; nil until needed
	// userSrv and userCli are the server and client with the service's
	// interceptors, which Server and Client return; nil without any.
	userSrv *interceptedServer
	userCli *interceptedClient
	// builtWith is what the server, client and their wrappers were first
	// made with; nil until then.
	builtWith *built
	brk       broker.Broker // the broker in use once asked for; nil until needed
	health    *health.Server

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
	address      string
	registry     registry.Registry
	tls          *tls.Config
	interceptors int
	accessLog    bool
	cors         string // the origins, joined
}

// running is what Start set up and Stop tears down.
type running struct {
	registry registry.Registry
	server   server.Server
	service  *registry.Service // as registered, with its one node
	stop     chan struct{}     // ends the refresh loop
	stopped  chan struct{}     // closed by the refresh loop
}

func (s *service) Name() string { return s.options().name }

func (s *service) Health() *health.Server { return s.health }

func (s *service) Registry() registry.Registry { return s.options().registry }

func (s *service) Init(opts ...Option) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applyOptions(&s.opts, opts)
	s.resolved = false
}

// options returns a copy of the options.
func (s *service) options() options {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked()
	return s.opts
}

// resolveLocked completes the options from the flags, the environment and
// the defaults when they changed since it last did; s.mu held.
func (s *service) resolveLocked() {
	if !s.resolved {
		resolve(&s.opts, os.Environ())
		s.resolved = true
	}
}

func (s *service) Server() server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.rawServerLocked()
	ics := s.opts.interceptors
	if s.opts.accessLog {
		// Outermost, so that the duration includes the other interceptors.
		ics = append([]interceptor.Interceptor{accesslog.Server(s.opts.log())}, ics...)
	}
	if len(ics) == 0 {
		return srv
	}
	if s.userSrv == nil {
		s.userSrv = &interceptedServer{srv, server.WithInterceptors(ics...)}
	}
	return s.userSrv
}

// rawServerLocked returns the server without the service's interceptors,
// creating it if needed; s.mu held. The built-in broker serves its
// deliveries on it.
func (s *service) rawServerLocked() server.Server {
	s.resolveLocked()
	if s.opts.server != nil {
		return s.opts.server
	}
	if s.srv == nil {
		opts := []server.Option{server.WithLogger(s.opts.log())}
		if s.opts.address != "" {
			opts = append(opts, server.WithAddress(s.opts.address))
		}
		if s.opts.tlsConfig != nil {
			opts = append(opts, server.WithTLSConfig(s.opts.tlsConfig))
		}
		if len(s.opts.corsOrigins) > 0 {
			opts = append(opts, server.WithCORS(s.opts.corsOrigins...))
		}
		s.srv = server.NewServer(opts...)
	}
	s.markBuiltLocked()
	return s.srv
}

func (s *service) Client() client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	cli := s.rawClientLocked()
	if len(s.opts.interceptors) == 0 {
		return cli
	}
	if s.userCli == nil {
		s.userCli = &interceptedClient{cli, s.opts.interceptors}
	}
	return s.userCli
}

// rawClientLocked returns the client without the service's interceptors,
// creating it if needed; s.mu held. The built-in broker delivers with it.
func (s *service) rawClientLocked() client.Client {
	s.resolveLocked()
	if s.opts.client != nil {
		return s.opts.client
	}
	if s.cli == nil {
		opts := []client.Option{
			client.WithRegistry(s.opts.registry),
		}
		if s.opts.tlsConfig != nil {
			opts = append(opts, client.WithTLSConfig(s.opts.tlsConfig))
		}
		s.cli = client.NewClient(opts...)
	}
	s.markBuiltLocked()
	return s.cli
}

// markBuiltLocked records the options the server, the client and their
// wrappers were made with, the first time; s.mu held.
func (s *service) markBuiltLocked() {
	if s.builtWith == nil {
		b := builtOf(&s.opts)
		s.builtWith = &b
	}
}

// builtOf is what of o shapes the server, the client and their wrappers.
func builtOf(o *options) built {
	return built{address: o.address, registry: o.registry, tls: o.tlsConfig, interceptors: len(o.interceptors), accessLog: o.accessLog,
		cors: strings.Join(o.corsOrigins, " ")}
}

func (s *service) Broker() broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked()
	if s.brk != nil {
		return s.brk
	}
	b := s.opts.broker
	if b == nil {
		// The built-in broker's deliveries are the service's plumbing, not
		// its calls: they use the server and client without the
		// interceptors.
		b = direct.NewBroker(direct.WithRegistry(s.opts.registry),
			direct.WithServer(s.rawServerLocked()), direct.WithClient(s.rawClientLocked()),
			direct.WithLogger(s.opts.log()))
	}
	for i := len(s.opts.brokerWrappers) - 1; i >= 0; i-- {
		b = s.opts.brokerWrappers[i](b)
	}
	s.brk = b
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
	s.resolveLocked()
	o := &s.opts
	switch {
	case o.configErr != nil:
		return o.configErr
	case o.name == "":
		return errors.New("service: no name (use service.WithName or MICRO_SERVER_NAME)")
	case s.builtWith != nil && *s.builtWith != builtOf(o):
		return errors.New("service: WithAddress, WithRegistry, WithTLSConfig, WithInterceptors, WithAccessLog or WithCORS set after Server, Client or Broker was first called")
	}
	return nil
}

// interceptedServer registers handlers with the service's interceptors.
type interceptedServer struct {
	server.Server
	ics server.SharedOption
}

func (s *interceptedServer) Handle(desc *server.ServiceDesc, impl any, opts ...server.HandlerOption) error {
	return s.Server.Handle(desc, impl, append([]server.HandlerOption{s.ics}, opts...)...)
}

// interceptedClient makes calls through the service's interceptors.
type interceptedClient struct {
	client.Client
	ics []interceptor.Interceptor
}

func (c *interceptedClient) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...client.CallOption) error {
	call := func(ctx context.Context, req, rsp any) error {
		return c.Client.Call(ctx, service, m, req, rsp, opts...)
	}
	return chain.Unary(c.ics, m, call)(ctx, req, rsp)
}

func (c *interceptedClient) Stream(ctx context.Context, service string, m *spec.Method, opts ...client.CallOption) (client.Stream, error) {
	open := func(ctx context.Context) (interceptor.ClientStream, error) {
		return c.Client.Stream(ctx, service, m, opts...)
	}
	return chain.StreamingClient(c.ics, m, open)(ctx)
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
	if o.registryErr != nil {
		return fmt.Errorf("service %s: no registry: %w", o.name, o.registryErr)
	}

	for _, hook := range o.beforeStart {
		if err := hook(); err != nil {
			return err
		}
	}
	srv := s.Server()
	if err := s.registerBuiltins(&o); err != nil {
		return fmt.Errorf("service %s: %w", o.name, err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("service %s: starting server: %w", o.name, err)
	}
	r := &running{
		registry: o.registry,
		server:   srv,
		service:  s.describe(&o, srv),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if err := register(o.ctx, r.registry, r.service, o.registerTTL); err != nil {
		err = fmt.Errorf("service %s: registering with %s: %w", o.name, r.registry, err)
		return errors.Join(err, srv.Stop())
	}
	// The broker's subscriptions are served by the server, now started.
	if b := s.usedBroker(); b != nil {
		if err := b.Connect(); err != nil {
			err = fmt.Errorf("service %s: connecting broker %s: %w", o.name, b, err)
			return errors.Join(err, deregister(o.ctx, r.registry, r.service), srv.Stop())
		}
	}
	go s.refresh(o.ctx, o.log(), r, o.registerTTL, o.registerInterval)
	s.run, s.state = r, started
	for _, desc := range srv.Services() {
		if !builtin(desc.Name) {
			s.health.SetServingStatus(desc.Name, health.Serving)
		}
	}
	s.health.SetServingStatus("", health.Serving)
	node := r.service.Nodes[0]
	o.log().Info("service started", "version", o.version, "address", node.Address, "listen", srv.Address(),
		"registry", r.registry.String(), "endpoints", len(r.service.Endpoints))

	for _, hook := range o.afterStart {
		if err := hook(); err != nil {
			return errors.Join(err, s.stopLocked(o, false))
		}
	}
	return nil
}

func (s *service) Stop() error {
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case idle:
		// Never started, but its client or default registry may be in
		// use, as in a program that only calls: close what was made.
		s.state = stopped
		return s.closeMade(s.options())
	case stopped:
		return nil
	}
	return s.stopLocked(s.options(), true)
}

// closeMade closes what a service that never started made: the built-in
// broker, the client and the default registry.
func (s *service) closeMade(o options) error {
	var errs []error
	s.mu.Lock()
	brk := s.brk
	s.mu.Unlock()
	if brk != nil && o.broker == nil {
		if err := brk.Disconnect(); err != nil && !errors.Is(err, broker.ErrDisconnected) {
			errs = append(errs, fmt.Errorf("service %s: disconnecting broker: %w", o.name, err))
		}
	}
	return errors.Join(append(errs, s.closeClientAndRegistry(o)...)...)
}

// closeClientAndRegistry closes the client the service created and the
// default registry it made (an mDNS one sends its goodbyes and stops
// listening); a client or registry given to the service is the caller's.
func (s *service) closeClientAndRegistry(o options) []error {
	var errs []error
	s.mu.Lock()
	cli := s.cli
	s.mu.Unlock()
	if cli != nil {
		if err := cli.Close(); err != nil {
			errs = append(errs, fmt.Errorf("service %s: closing client: %w", o.name, err))
		}
	}
	if o.created != nil && o.registry == o.created {
		if err := o.created.Close(); err != nil {
			errs = append(errs, fmt.Errorf("service %s: closing registry: %w", o.name, err))
		}
	}
	return errs
}

// stopLocked stops a started service, with or without the stop hooks, and
// returns the first error. s.life is held.
func (s *service) stopLocked(o options, hooks bool) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	// NOT_SERVING first, while the server still answers: health checkers
	// and watchers hear it before the node leaves the registry and before
	// the drain's GOAWAY. It also ends open Watch calls, which would
	// otherwise hold the drain open for the whole grace period.
	s.health.Shutdown()
	if hooks {
		for _, hook := range o.beforeStop {
			keep(hook())
		}
	}
	r := s.run
	close(r.stop)
	<-r.stopped
	// Deregister before draining: clients stop picking the node while it
	// still answers the calls they already sent.
	if err := deregister(o.ctx, r.registry, r.service); err != nil {
		keep(fmt.Errorf("service %s: deregistering from %s: %w", o.name, r.registry, err))
	}
	// The broker drains its handlers and deliveries while the server and
	// client still work.
	if b := s.usedBroker(); b != nil {
		if err := b.Disconnect(); err != nil {
			keep(fmt.Errorf("service %s: disconnecting broker %s: %w", o.name, b, err))
		}
	}
	if err := r.server.Stop(); err != nil {
		keep(fmt.Errorf("service %s: stopping server: %w", o.name, err))
	}
	// Handlers may call out while draining; only now close the client.
	for _, err := range s.closeClientAndRegistry(o) {
		keep(err)
	}
	o.log().Info("service stopped")
	if hooks {
		for _, hook := range o.afterStop {
			keep(hook())
		}
	}
	s.run, s.state = nil, stopped
	close(s.done)
	return first
}

func (s *service) Run() error {
	o := s.options()
	ctx, stopSignals := o.ctx, context.CancelFunc(func() {})
	if o.signal {
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
		o.log().Info("service stopping", "reason", context.Cause(ctx))
		return s.Stop()
	case <-s.done:
		return nil // stopped by Stop, which reported its own error
	}
}

// refresh re-registers every interval until r.stop is closed.
func (s *service) refresh(ctx context.Context, log *slog.Logger, r *running, ttl, interval time.Duration) {
	defer close(r.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := register(ctx, r.registry, r.service, ttl); err != nil {
				log.Warn("service: refreshing registration failed", "registry", r.registry.String(), "error", err)
			}
		}
	}
}

// describe returns the registry entry for the service: its endpoints, read
// from the server's method tables, and one node at the advertised address.
func (s *service) describe(o *options, srv server.Server) *registry.Service {
	var endpoints []*registry.Endpoint
	for _, desc := range srv.Services() {
		if builtin(desc.Name) {
			continue // every node serves them; not worth the registry's space
		}
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
		Name:      o.name,
		Version:   o.version,
		Metadata:  o.metadata,
		Endpoints: endpoints,
		Nodes: []*registry.Node{{
			ID:       o.name + "-" + s.nodeID,
			Address:  advertised(o.registry, srv.Address()),
			Metadata: map[string]string{"protocol": "grpc", "transport": "http2"},
		}},
	}
}

// registerBuiltins registers health and reflection with the server, as
// enabled, unless a service of that name is registered already (the
// user's own, or from an earlier Start that failed).
func (s *service) registerBuiltins(o *options) error {
	s.mu.Lock()
	srv := s.rawServerLocked()
	s.mu.Unlock()
	has := map[string]bool{}
	for _, desc := range srv.Services() {
		has[desc.Name] = true
	}
	if o.health && !has[grpcapi.HealthService] {
		if err := health.Register(srv, s.health); err != nil {
			return err
		}
	}
	if o.reflection && !has[grpcapi.ReflectionV1Service] && !has[grpcapi.ReflectionV1AlphaService] {
		if err := reflection.Register(srv); err != nil {
			return err
		}
	}
	return nil
}

// builtin says a service is one of those registerBuiltins registers.
func builtin(name string) bool {
	switch name {
	case grpcapi.HealthService, grpcapi.ReflectionV1Service, grpcapi.ReflectionV1AlphaService:
		return true
	}
	return false
}

// advertised is the address to register for a server listening on listen:
// as it is for a registry that advertises each interface's own addresses
// (mDNS), otherwise one concrete address.
func advertised(r registry.Registry, listen string) string {
	if ia, ok := r.(interfaceAdvertiser); ok && ia.AdvertisesInterfaceAddresses() {
		return listen
	}
	return advertise.Address(listen)
}

// register and deregister outlive the service's context: Run stops because
// that context ended, and must still be able to deregister.
func register(ctx context.Context, r registry.Registry, s *registry.Service, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	defer cancel()
	return r.Register(ctx, s, ttl)
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

// interfaceAdvertiser is implemented by registries that advertise a node
// registered with an unspecified host (":8080", "[::]:8080") with the
// addresses of each network interface they announce it on, as mDNS does.
// With such a registry a service registers its listening address as it is
// instead of choosing one address for every network.
type interfaceAdvertiser interface {
	AdvertisesInterfaceAddresses() bool
}
