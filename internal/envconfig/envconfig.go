// Package envconfig reads the MICRO_ settings a service takes from its
// environment and flags (registry, broker, TLS, log level...), so that a
// service (runtime/service) and the micro command (cmd/micro) choose their
// registry, broker and TLS configuration the same way. It makes nothing
// with a server or client of its own: its callers wire what it returns.
//
// Errors carry no package prefix; the caller adds its own.
package envconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/brokerplugin"
	"github.com/protoc-gen-micro/micro/internal/regplugin"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
)

// Setting is one setting read from a flag and its environment variable.
type Setting struct {
	Env, Flag, Usage string
}

// Settings are the settings, in the order -help lists them.
var Settings = []Setting{
	{"MICRO_SERVER_NAME", "server_name", "name the service is called by"},
	{"MICRO_SERVER_VERSION", "server_version", "version advertised with the service's nodes"},
	{"MICRO_SERVER_ADDRESS", "server_address", "address the server listens on, e.g. :8080"},
	{"MICRO_REGISTRY", "registry", "registry: mdns (the default), memory, or a plug-in's name"},
	{"MICRO_REGISTRY_ADDRESS", "registry_address", "address of the registry's server, for registries that have one"},
	{"MICRO_BROKER", "broker", "broker: direct (the default, over the service's own server), memory, or a plug-in's name"},
	{"MICRO_BROKER_ADDRESS", "broker_address", "address of the broker's server, for brokers that have one"},
	{"MICRO_TLS_CERT", "tls_cert", "PEM certificate file: the server's, and the client's for mutual TLS"},
	{"MICRO_TLS_KEY", "tls_key", "PEM private key file of tls_cert"},
	{"MICRO_TLS_CA", "tls_ca", "PEM CA file: clients verify servers with it, and servers then require client certificates it signed (mutual TLS)"},
	{"MICRO_LOG_LEVEL", "log_level", "log level: debug, info (the default), warn or error"},
}

// OtherEnv are MICRO_ variables that packages other than these settings'
// readers use (the mDNS registry reads MICRO_MDNS_INTERFACES).
var OtherEnv = []string{"MICRO_MDNS_INTERFACES"}

// DefineFlags defines each setting as a string flag on fs, unless fs has a
// flag of that name already.
func DefineFlags(fs *flag.FlagSet) {
	for _, s := range Settings {
		if fs.Lookup(s.Flag) == nil {
			fs.String(s.Flag, "", s.Usage+" (env "+s.Env+")")
		}
	}
}

// Config is the settings read from the flags and the environment, by
// environment variable name. Unset settings are absent.
type Config map[string]string

// Read reads environ ("KEY=value" pairs), then the flags of fs that were
// set (fs may be nil), and refuses MICRO_ variables it does not know.
func Read(environ []string, fs *flag.FlagSet) (Config, error) {
	c := Config{}
	known := map[string]bool{}
	for _, s := range Settings {
		known[s.Env] = true
	}
	for _, e := range OtherEnv {
		known[e] = true
	}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "MICRO_") {
			continue
		}
		if !known[k] {
			unknown = append(unknown, k)
			continue
		}
		if v != "" {
			c[k] = v
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names := make([]string, 0, len(known))
		for k := range known {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown environment variable %s (known: %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	if fs != nil {
		byFlag := map[string]string{}
		for _, s := range Settings {
			byFlag[s.Flag] = s.Env
		}
		fs.Visit(func(f *flag.Flag) {
			if env, ok := byFlag[f.Name]; ok {
				c[env] = f.Value.String()
			}
		})
	}
	return c, nil
}

// Registry is the registry implementation -registry or MICRO_REGISTRY
// names; mDNS, which needs no server, when neither does.
func (c Config) Registry() string {
	if n := c["MICRO_REGISTRY"]; n != "" {
		return n
	}
	return "mdns"
}

// CheckRegistryAddress refuses a registry address for the built-in
// registries, which have no server.
func (c Config) CheckRegistryAddress() error {
	if addr := c["MICRO_REGISTRY_ADDRESS"]; addr != "" {
		if name := c.Registry(); name == "mdns" || name == "memory" {
			return fmt.Errorf("MICRO_REGISTRY_ADDRESS=%q is set, but the %s registry takes no address", addr, name)
		}
	}
	return nil
}

// Broker returns the broker MICRO_BROKER names; nil for the built-in direct
// broker, which the caller builds over its own server, client and
// registry. A plug-in (such as plugins/nats) is known once its package is
// imported.
func (c Config) Broker(log *slog.Logger) (broker.Broker, error) {
	name, addr := c["MICRO_BROKER"], c["MICRO_BROKER_ADDRESS"]
	switch name {
	case "", "direct":
		if addr != "" {
			return nil, fmt.Errorf("MICRO_BROKER_ADDRESS=%q is set, but the direct broker takes no address: it delivers over the service's own server", addr)
		}
		return nil, nil
	case "memory":
		if addr != "" {
			return nil, fmt.Errorf("MICRO_BROKER_ADDRESS=%q is set, but the memory broker takes no address", addr)
		}
		return memory.NewBroker(), nil
	}
	if f, ok := brokerplugin.Lookup(name); ok {
		b, err := f(addr, log)
		if err != nil {
			return nil, fmt.Errorf("MICRO_BROKER=%s: %w", name, err)
		}
		return b, nil
	}
	return nil, &UnknownBrokerError{Name: name, Known: KnownBrokers()}
}

// NewRegistry returns the registry MICRO_REGISTRY names (mDNS by default),
// logging to log; see registry.New for its error. Check the address with
// CheckRegistryAddress first.
func (c Config) NewRegistry(log *slog.Logger) (registry.Registry, error) {
	name := c.Registry()
	if name == "mdns" {
		return mdns.NewRegistry(mdns.WithLogger(log)), nil
	}
	if f, ok := regplugin.Lookup(name); ok {
		if r, err := f(c["MICRO_REGISTRY_ADDRESS"], log); err == nil {
			return r, nil
		}
		// registry.New fails the same way, and returns with its error a
		// registry that fails every call with it.
	}
	return registry.New(name, c["MICRO_REGISTRY_ADDRESS"])
}

// KnownBrokers names the brokers MICRO_BROKER can choose in this program.
func KnownBrokers() []string {
	return append([]string{"direct", "memory"}, brokerplugin.Names()...)
}

// UnknownBrokerError is Broker's error for a name no broker has.
type UnknownBrokerError struct {
	Name  string
	Known []string
}

func (e *UnknownBrokerError) Error() string {
	return fmt.Sprintf("MICRO_BROKER=%q is not a known broker (known: %s); a plug-in registers itself when its package is imported",
		e.Name, strings.Join(e.Known, ", "))
}

// TLS builds the TLS configuration MICRO_TLS_CERT, MICRO_TLS_KEY and
// MICRO_TLS_CA describe; nil when none is set. A CA makes TLS mutual:
// servers require client certificates it signed, and clients verify
// servers with it.
func (c Config) TLS() (*tls.Config, error) {
	certFile, keyFile, caFile := c["MICRO_TLS_CERT"], c["MICRO_TLS_KEY"], c["MICRO_TLS_CA"]
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("MICRO_TLS_CERT and MICRO_TLS_KEY go together: set both or neither")
	case certFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading MICRO_TLS_CERT and MICRO_TLS_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading MICRO_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MICRO_TLS_CA=%q holds no PEM certificate", caFile)
		}
		cfg.RootCAs, cfg.ClientCAs, cfg.ClientAuth = pool, pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// LogLevel returns the level MICRO_LOG_LEVEL names; ok is false when it is
// unset.
func (c Config) LogLevel() (l slog.Level, ok bool, err error) {
	lvl := c["MICRO_LOG_LEVEL"]
	if lvl == "" {
		return 0, false, nil
	}
	if err := l.UnmarshalText([]byte(lvl)); err != nil {
		return 0, false, fmt.Errorf("MICRO_LOG_LEVEL=%q is not a level (debug, info, warn or error)", lvl)
	}
	return l, true, nil
}
