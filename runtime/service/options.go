package service

import (
	"context"
	"crypto/tls"
	"flag"
	"log/slog"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/registry"

	// The implementations MICRO_REGISTRY can name without a plug-in.
	_ "github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	_ "github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// Defaults. A node that stops refreshing its registration disappears from
// the registry within defaultRegisterTTL.
const (
	defaultRegisterTTL      = 90 * time.Second
	defaultRegisterInterval = 30 * time.Second
	defaultVersion          = "latest"
)

// options are the settings of a service.
type options struct {
	name             string
	version          string
	address          string // the created server's listen address
	metadata         map[string]string
	registry         registry.Registry
	server           server.Server // given; nil when the service creates one
	client           client.Client // given; nil when the service creates one
	broker           broker.Broker // given; nil for the built-in one
	brokerWrappers   []func(broker.Broker) broker.Broker
	tlsConfig        *tls.Config
	registerTTL      time.Duration
	registerInterval time.Duration
	ctx              context.Context
	signal           bool
	health           bool // register grpc.health.v1.Health
	reflection       bool // register server reflection
	beforeStart      []func() error
	afterStart       []func() error
	beforeStop       []func() error
	afterStop        []func() error
	interceptors     []interceptor.Interceptor
	flags            *flag.FlagSet // read at Start; see WithFlags
	logger           *slog.Logger  // as given; see log
	accessLog        bool
	corsOrigins      []string
	nodeID           string // the service's, copied here for log

	// configErr is what is wrong with the environment or the flags; Start
	// reports it.
	configErr error
	// registryErr is why no default registry could be made; Start reports it.
	registryErr error
	// created is the default registry the service made, which Stop closes.
	created registry.Registry
}

// Option configures a service.
type Option func(*options)

func newOptions(opts ...Option) options {
	o := options{signal: true, health: true, reflection: true}
	applyOptions(&o, opts)
	return o
}

// applyOptions applies opts.
func applyOptions(o *options, opts []Option) {
	for _, opt := range opts {
		opt(o)
	}
}

// fillDefaults sets what neither the code, the flags nor the environment
// set.
func fillDefaults(o *options) {
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	if o.version == "" {
		o.version = defaultVersion
	}
	if o.registerTTL <= 0 {
		o.registerTTL = defaultRegisterTTL
	}
	if o.registerInterval <= 0 {
		o.registerInterval = defaultRegisterInterval
	}
}

// log returns the logger of the service and what it makes: the one given
// with WithLogger, or slog.Default(), naming the service and its node.
func (o *options) log() *slog.Logger {
	l := o.logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("service", o.name, "node", o.name+"-"+o.nodeID)
}

// WithLogger sets where the service logs, and the server, built-in broker
// and mDNS registry it creates; slog.Default() by default. Every line
// names the service and the node.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAccessLog logs every call the service serves, one line when it ends,
// through the service's logger (see WithLogger and package accesslog for
// the attributes). Like WithInterceptors, it must be set before Server is
// first called.
func WithAccessLog() Option { return func(o *options) { o.accessLog = true } }

// WithCORS lets web pages from these origins call the service's server
// with Connect and gRPC-Web (see server.WithCORS). Like WithAddress, it
// must be set before Server is first called.
func WithCORS(origins ...string) Option {
	return func(o *options) { o.corsOrigins = append(o.corsOrigins, origins...) }
}

// WithName sets the name clients call the service by. Required.
func WithName(n string) Option { return func(o *options) { o.name = n } }

// WithVersion sets the version advertised with the nodes; "latest" by
// default.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithAddress sets the listen address of the server the service creates;
// the server's default (":0") when empty.
func WithAddress(addr string) Option { return func(o *options) { o.address = addr } }

// WithMetadata sets key/value pairs advertised with the service.
func WithMetadata(md map[string]string) Option { return func(o *options) { o.metadata = md } }

// WithRegistry sets where the service advertises itself and its client
// looks services up; by default the one MICRO_REGISTRY names, mDNS when
// unset.
func WithRegistry(r registry.Registry) Option { return func(o *options) { o.registry = r } }

// WithServer gives the server to serve the handlers with, instead of one the
// service creates. The service's other server settings do not apply to it.
func WithServer(s server.Server) Option { return func(o *options) { o.server = s } }

// WithClient gives the client to call other services with, instead of one
// the service creates. The service's other client settings do not apply to
// it, and the service does not close it.
func WithClient(c client.Client) Option { return func(o *options) { o.client = c } }

// WithBroker sets the broker to publish and subscribe with; by default the
// built-in one on the service's own server, client and registry, made when
// first asked for.
func WithBroker(b broker.Broker) Option { return func(o *options) { o.broker = b } }

// WithBrokerWrapper adds a wrapper around the broker the service uses,
// whichever it is: given with WithBroker, named by MICRO_BROKER, or the
// built-in one. Broker returns the wrapped broker, and the service connects
// and disconnects it; wrappers apply in the order given, the first
// outermost. Set it before Broker is first called.
func WithBrokerWrapper(w func(broker.Broker) broker.Broker) Option {
	return func(o *options) { o.brokerWrappers = append(o.brokerWrappers, w) }
}

// WithTLSConfig makes the service's server and client use TLS with c: the
// server presents c.Certificates and, for mutual TLS, verifies clients
// against c.ClientCAs as c.ClientAuth says; the client verifies servers
// against c.RootCAs and presents c.Certificates when asked.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithInterceptors adds interceptors around every call the service serves
// and makes, unary and streaming; the first is outermost. The built-in
// broker's own deliveries are not calls of the service and do not pass
// through them.
func WithInterceptors(i ...interceptor.Interceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, i...) }
}

// WithRegisterTTL sets the registration's time to live; 90 s by default.
func WithRegisterTTL(d time.Duration) Option { return func(o *options) { o.registerTTL = d } }

// WithRegisterInterval sets how often the registration is refreshed; 30 s
// by default.
func WithRegisterInterval(d time.Duration) Option {
	return func(o *options) { o.registerInterval = d }
}

// WithContext sets a context whose end stops Run; context.Background() by
// default.
func WithContext(ctx context.Context) Option { return func(o *options) { o.ctx = ctx } }

// WithSignal sets whether Run stops on SIGINT or SIGTERM; true by default.
func WithSignal(b bool) Option { return func(o *options) { o.signal = b } }

// WithHealth sets whether the service serves the gRPC health checking
// protocol (grpc.health.v1.Health, see package health); true by default.
// Service.Health returns its statuses either way.
func WithHealth(b bool) Option { return func(o *options) { o.health = b } }

// WithReflection sets whether the service serves gRPC server reflection
// (see package reflection), which lets grpcurl and similar tools list and
// call its services without .proto files; true by default.
func WithReflection(b bool) Option { return func(o *options) { o.reflection = b } }

// WithBeforeStart adds a hook run before the server starts.
func WithBeforeStart(fn func() error) Option {
	return func(o *options) { o.beforeStart = append(o.beforeStart, fn) }
}

// WithAfterStart adds a hook run once the service is registered.
func WithAfterStart(fn func() error) Option {
	return func(o *options) { o.afterStart = append(o.afterStart, fn) }
}

// WithBeforeStop adds a hook run before the service deregisters.
func WithBeforeStop(fn func() error) Option {
	return func(o *options) { o.beforeStop = append(o.beforeStop, fn) }
}

// WithAfterStop adds a hook run once the service has stopped.
func WithAfterStop(fn func() error) Option {
	return func(o *options) { o.afterStop = append(o.afterStop, fn) }
}
