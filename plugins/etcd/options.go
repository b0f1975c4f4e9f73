package etcd

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"time"
)

// Defaults.
const (
	defaultEndpoint    = "127.0.0.1:2379"
	defaultPrefix      = "/micro/registry/"
	defaultDialTimeout = 5 * time.Second
)

// Option configures NewRegistry.
type Option func(*options)

type options struct {
	endpoints   []string
	dialTimeout time.Duration
	tls         *tls.Config
	username    string
	password    string
	prefix      string
	logger      *slog.Logger
}

// WithEndpoints sets the etcd endpoints, host:port or URLs;
// 127.0.0.1:2379 by default.
func WithEndpoints(endpoints ...string) Option {
	return func(o *options) { o.endpoints = append([]string(nil), endpoints...) }
}

// WithDialTimeout bounds how long the first lookup waits for etcd and how
// long Close spends withdrawing this registry's nodes; 5 s by default.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithTLSConfig makes the client speak TLS with c.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithUsername sets the user name for etcd authentication.
func WithUsername(u string) Option { return func(o *options) { o.username = u } }

// WithPassword sets the password for etcd authentication.
func WithPassword(p string) Option { return func(o *options) { o.password = p } }

// WithPrefix sets the key prefix under which services are kept;
// "/micro/registry/" by default. Registries share services only when
// they share the prefix.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithLogger sets where the registry logs the start and end of an etcd
// outage and skipped values; slog.Default() by default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) options {
	o := options{dialTimeout: defaultDialTimeout, prefix: defaultPrefix}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.endpoints) == 0 {
		o.endpoints = []string{defaultEndpoint}
	}
	if o.dialTimeout <= 0 {
		o.dialTimeout = defaultDialTimeout
	}
	if o.prefix == "" {
		o.prefix = defaultPrefix
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// splitEndpoints splits a comma-separated address list, dropping empty
// entries.
func splitEndpoints(address string) []string {
	var out []string
	for _, e := range strings.Split(address, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
