package nats

import (
	"crypto/tls"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// DefaultURL is the server a broker connects to when given none.
const DefaultURL = natsgo.DefaultURL

// Defaults of the bounds and of JetStream redelivery.
const (
	defaultMaxReconnects    = -1 // reconnect for ever
	defaultReconnectBufSize = natsgo.DefaultReconnectBufSize
	defaultMaxPendingBytes  = 64 << 20
	defaultMaxDeliver       = 3
	defaultAckWait          = 30 * time.Second
)

var defaultBackOff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second}

// Option configures NewBroker.
type Option func(*options)

type options struct {
	urls             []string
	name             string
	nats             []natsgo.Option
	reconnectBufSize int
	maxPendingBytes  int
	jetStream        []string // topic prefixes
	maxDeliver       int
	ackWait          time.Duration
	backOff          []time.Duration
	logger           *slog.Logger
}

// WithLogger sets where the broker logs (messages it drops, refuses or
// dead-letters, and asynchronous errors); slog.Default() by default. A
// service that chooses the broker by MICRO_BROKER gives it its own, which
// names the service and node.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithURL sets the server to connect to, e.g. "nats://127.0.0.1:4222"
// (DefaultURL when none is given). Several, or a comma-separated list,
// name the servers of one cluster.
func WithURL(urls ...string) Option { return func(o *options) { o.urls = append(o.urls, urls...) } }

// WithName names the connection (nats.Name). A JetStream subscription
// without a queue group is durable only when the broker has a name: its
// consumer is named after it (see the package documentation).
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithTLSConfig connects with TLS (nats.Secure).
func WithTLSConfig(c *tls.Config) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.Secure(c)) }
}

// WithUserInfo authenticates with a user name and password (nats.UserInfo).
func WithUserInfo(user, password string) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.UserInfo(user, password)) }
}

// WithToken authenticates with a token (nats.Token).
func WithToken(token string) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.Token(token)) }
}

// WithCredentials authenticates with a NATS credentials file holding a
// user JWT and its NKey seed (nats.UserCredentials).
func WithCredentials(file string) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.UserCredentials(file)) }
}

// WithConnectTimeout bounds each attempt to connect (nats.Timeout; 2 s by
// default).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.Timeout(d)) }
}

// WithReconnectWait sets the wait between attempts to reconnect to a
// server (nats.ReconnectWait; 2 s by default).
func WithReconnectWait(d time.Duration) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.ReconnectWait(d)) }
}

// WithMaxReconnects bounds the attempts to reconnect after the connection
// is lost (nats.MaxReconnects); by default the broker tries for ever, so a
// service outlives a server restart. A negative n also means for ever.
func WithMaxReconnects(n int) Option {
	return func(o *options) { o.nats = append(o.nats, natsgo.MaxReconnects(n)) }
}

// WithReconnectBufSize bounds the bytes of publications held while the
// connection is being re-established (nats.ReconnectBufSize; 8 MiB by
// default): once the buffer holds n bytes, Publish fails at once with
// nats.ErrReconnectBufExceeded.
func WithReconnectBufSize(n int) Option { return func(o *options) { o.reconnectBufSize = n } }

// WithMaxPendingBytes bounds the bytes of the messages a subscription
// holds that no handler has taken yet (the byte half of nats pending
// limits; 64 MiB by default). broker.WithMaxInFlight bounds their number.
// Core NATS drops what is beyond either bound (a slow consumer).
func WithMaxPendingBytes(n int) Option { return func(o *options) { o.maxPendingBytes = n } }

// WithJetStream makes the topics under the given prefixes JetStream topics:
// a topic equal to a prefix, or starting with prefix + ".", is stored in
// that prefix's stream and its subscriptions are durable consumers. See
// the package documentation.
func WithJetStream(prefixes ...string) Option {
	return func(o *options) { o.jetStream = append(o.jetStream, prefixes...) }
}

// WithMaxDeliver bounds the deliveries of a JetStream message to one
// consumer (MaxDeliver, 3 by default); a message whose handler still fails
// then goes to the dead-letter subject.
func WithMaxDeliver(n int) Option { return func(o *options) { o.maxDeliver = n } }

// WithAckWait sets how long JetStream waits for a handler to settle a
// message before delivering it again (AckWait, 30 s by default). It is the
// deadline of a handler whose publisher gave none.
func WithAckWait(d time.Duration) Option { return func(o *options) { o.ackWait = d } }

// WithBackOff sets the waits before JetStream redeliveries after a handler
// error: the n-th redelivery waits d[n-1], or the last of d (100 ms
// doubling to 2 s by default).
func WithBackOff(d ...time.Duration) Option { return func(o *options) { o.backOff = d } }
