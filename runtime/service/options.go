package service

import (
	"context"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	// The implementations registry.FromEnv can name.
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

// Options configures a Service.
type Options struct {
	// Name is the service name clients call it by. Required.
	Name string
	// Version is advertised with the nodes; "latest" when empty.
	Version string
	// Address is the server's listen address when the service creates the
	// server; the server's default (":0") when empty.
	Address string
	// Metadata is advertised with the service.
	Metadata map[string]string
	// Registry is where the service advertises itself and the client looks
	// services up; by default the one MICRO_REGISTRY names, mDNS when unset.
	Registry registry.Registry
	// Server serves the handlers; created from Address and HandlerWrappers
	// when nil.
	Server server.Server
	// Client calls other services; created from Registry and
	// ClientWrappers when nil.
	Client client.Client
	// Broker publishes and subscribes; when nil, the built-in broker on the
	// service's own server, client and registry, made when first asked for.
	Broker broker.Broker
	// RegisterTTL is the registration's time to live; 90 s by default.
	RegisterTTL time.Duration
	// RegisterInterval is how often the registration is refreshed; 30 s
	// by default.
	RegisterInterval time.Duration
	// Context ends Run when done; context.Background() by default.
	Context context.Context
	// Signal makes Run stop on SIGINT or SIGTERM; true by default.
	Signal bool
	// Hooks run in order around Start and Stop.
	BeforeStart, AfterStart, BeforeStop, AfterStop []func() error
	// HandlerWrappers wrap every handler of the server the service creates.
	HandlerWrappers []server.UnaryInterceptor
	// ClientWrappers wrap every call of the client the service creates.
	ClientWrappers []client.UnaryInterceptor

	// registryErr is why no default registry could be made; Start reports it.
	registryErr error
	// created is the default registry the service made, which Stop closes.
	created registry.Registry
}

// Option sets a service option.
type Option func(*Options)

func newOptions(opts ...Option) Options {
	o := Options{Signal: true}
	applyOptions(&o, opts)
	return o
}

// applyOptions applies opts and fills in what they left unset.
func applyOptions(o *Options, opts []Option) {
	for _, opt := range opts {
		opt(o)
	}
	if o.Registry == nil && o.registryErr == nil {
		o.Registry, o.registryErr = defaultRegistry()
		o.created = o.Registry
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Version == "" {
		o.Version = defaultVersion
	}
	if o.RegisterTTL <= 0 {
		o.RegisterTTL = defaultRegisterTTL
	}
	if o.RegisterInterval <= 0 {
		o.RegisterInterval = defaultRegisterInterval
	}
}

// defaultRegistry is the registry of a service given none: the one
// MICRO_REGISTRY names, mDNS when it is unset (registry.FromEnv). Other
// implementations register themselves with registry.RegisterFactory.
func defaultRegistry() (registry.Registry, error) { return registry.FromEnv() }

// Broker sets the broker the service connects when it starts.
func Broker(b broker.Broker) Option { return func(o *Options) { o.Broker = b } }

// Name sets the service name.
func Name(n string) Option { return func(o *Options) { o.Name = n } }

// Version sets the service version.
func Version(v string) Option { return func(o *Options) { o.Version = v } }

// Address sets the listen address of the server the service creates.
func Address(addr string) Option { return func(o *Options) { o.Address = addr } }

// Metadata sets the metadata advertised with the service.
func Metadata(md map[string]string) Option { return func(o *Options) { o.Metadata = md } }

// Registry sets the registry.
func Registry(r registry.Registry) Option { return func(o *Options) { o.Registry = r } }

// Server sets the server, instead of one the service creates.
func Server(s server.Server) Option { return func(o *Options) { o.Server = s } }

// Client sets the client, instead of one the service creates.
func Client(c client.Client) Option { return func(o *Options) { o.Client = c } }

// RegisterTTL sets the registration's time to live.
func RegisterTTL(d time.Duration) Option { return func(o *Options) { o.RegisterTTL = d } }

// RegisterInterval sets how often the registration is refreshed.
func RegisterInterval(d time.Duration) Option { return func(o *Options) { o.RegisterInterval = d } }

// Context sets the context whose end stops Run.
func Context(ctx context.Context) Option { return func(o *Options) { o.Context = ctx } }

// Signal sets whether Run stops on SIGINT and SIGTERM.
func Signal(b bool) Option { return func(o *Options) { o.Signal = b } }

// BeforeStart adds a hook run before the server starts.
func BeforeStart(fn func() error) Option {
	return func(o *Options) { o.BeforeStart = append(o.BeforeStart, fn) }
}

// AfterStart adds a hook run once the service is serving and registered.
func AfterStart(fn func() error) Option {
	return func(o *Options) { o.AfterStart = append(o.AfterStart, fn) }
}

// BeforeStop adds a hook run before the service deregisters.
func BeforeStop(fn func() error) Option {
	return func(o *Options) { o.BeforeStop = append(o.BeforeStop, fn) }
}

// AfterStop adds a hook run once the server has stopped.
func AfterStop(fn func() error) Option {
	return func(o *Options) { o.AfterStop = append(o.AfterStop, fn) }
}

// WrapHandler adds interceptors around every handler of the server the
// service creates; the first is outermost.
func WrapHandler(w ...server.UnaryInterceptor) Option {
	return func(o *Options) { o.HandlerWrappers = append(o.HandlerWrappers, w...) }
}

// WrapClient adds interceptors around every call of the client the service
// creates; the first is outermost.
func WrapClient(w ...client.UnaryInterceptor) Option {
	return func(o *Options) { o.ClientWrappers = append(o.ClientWrappers, w...) }
}
