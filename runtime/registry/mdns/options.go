package mdns

import (
	"log/slog"
	"os"
	"strings"
	"time"
)

// envInterfaces names the environment variable that chooses the
// interfaces, comma-separated (MICRO_MDNS_INTERFACES=eth0,lo), when
// WithInterfaces is not given.
const envInterfaces = "MICRO_MDNS_INTERFACES"

// Defaults.
const (
	defaultSettle           = 30 * time.Millisecond
	defaultMaxWait          = 2 * time.Second
	defaultAnnounceInterval = time.Second
)

// Option configures NewRegistry.
type Option func(*options)

type options struct {
	interfaces       []string
	settle           time.Duration
	maxWait          time.Duration
	announceInterval time.Duration
	network          string
	logger           *slog.Logger
}

// WithInterfaces limits the registry to the named interfaces. By default it
// uses every interface that is up and multicast-capable, or those listed
// in MICRO_MDNS_INTERFACES. A named interface is used even without the
// MULTICAST flag, if it is up.
func WithInterfaces(names ...string) Option {
	return func(o *options) { o.interfaces = append([]string(nil), names...) }
}

// WithSettle sets how long a cold lookup keeps listening after the first
// answer, for the other nodes' answers; 30 ms by default.
func WithSettle(d time.Duration) Option { return func(o *options) { o.settle = d } }

// WithMaxWait bounds how long a cold lookup waits for a first answer;
// 2 s by default, which outlasts the second for which a responder that
// has just announced holds back its multicast answers (RFC 6762 §6), with
// time for re-queries. The lookup's context may end it sooner.
func WithMaxWait(d time.Duration) Option { return func(o *options) { o.maxWait = d } }

// WithAnnounceInterval sets the gap between the first and second announcement
// of a registration; the third follows after twice that. RFC 6762 §8.3
// asks for one second, the default; tests shorten it.
func WithAnnounceInterval(d time.Duration) Option { return func(o *options) { o.announceInterval = d } }

// WithNetwork chooses the IP families mDNS runs over: "udp" (IPv4 and IPv6,
// the default), "udp4" or "udp6". Records carry both A and AAAA
// addresses either way.
func WithNetwork(network string) Option { return func(o *options) { o.network = network } }

// WithLogger sets where the registry logs; slog.Default() by default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func newOptions(opts []Option) options {
	o := options{
		settle:           defaultSettle,
		maxWait:          defaultMaxWait,
		announceInterval: defaultAnnounceInterval,
		network:          "udp",
	}
	if env := os.Getenv(envInterfaces); env != "" {
		for _, name := range strings.Split(env, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.interfaces = append(o.interfaces, name)
			}
		}
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}
