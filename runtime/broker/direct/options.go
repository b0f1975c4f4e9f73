package direct

import (
	"log/slog"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// Registration defaults, as for service nodes: a subscription whose
// process dies disappears from the registry within the TTL; until then
// publishers find it unreachable and pass over it.
const (
	defaultRegisterTTL      = 90 * time.Second
	defaultRegisterInterval = 30 * time.Second
)

// Option configures NewBroker.
type Option func(*options)

type options struct {
	registry         registry.Registry
	server           server.Server
	client           client.Client
	address          string
	advertise        string
	registerTTL      time.Duration
	registerInterval time.Duration
	maxAsync         int
	logger           *slog.Logger
}

// WithRegistry sets where subscriptions are registered and found: the
// service's registry. Without it the broker uses an in-memory registry of
// its own, which no other broker sees.
func WithRegistry(r registry.Registry) Option { return func(o *options) { o.registry = r } }

// WithServer serves deliveries on s, such as the service's server, instead of
// a server of the broker's own. The broker registers its handler on s when
// it connects, which must be after s has started; s is the caller's to
// stop.
func WithServer(s server.Server) Option { return func(o *options) { o.server = s } }

// WithClient delivers with c, such as the service's client, instead of a
// client of the broker's own; c is the caller's to close. Deliveries name
// their subscriber's address, so c's selector plays no part.
func WithClient(c client.Client) Option { return func(o *options) { o.client = c } }

// WithAddress sets the listen address of the broker's own server; ":0" (a free
// port on every interface) by default.
func WithAddress(addr string) Option { return func(o *options) { o.address = addr } }

// WithAdvertise sets the address registered for the broker's subscriptions,
// instead of one derived from the server's listen address.
func WithAdvertise(addr string) Option { return func(o *options) { o.advertise = addr } }

// WithLogger sets where the broker logs; slog.Default() by default. A
// service gives its built-in broker a logger that names the service and
// node.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxAsync sets the number of asynchronous slots (8192 by default). An
// asynchronous publication in flight holds one slot per 8 KiB of body,
// at least one, so the default bounds them to 8192 small messages and to
// 64 MiB of bodies; beyond it Publish with broker.WithAsync waits, or fails
// with broker.ErrBusy under broker.WithFailFast.
func WithMaxAsync(n int) Option { return func(o *options) { o.maxAsync = n } }
