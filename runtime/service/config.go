package service

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
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
)

// A setting the service reads from the command line (see WithFlags) and
// the environment. Options given in code win over both; a flag wins over
// its environment variable.
type setting struct {
	env, flag, usage string
}

// The settings, in the order -help lists them.
var settings = []setting{
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

// otherEnv are MICRO_ variables that packages other than service read.
var otherEnv = []string{"MICRO_MDNS_INTERFACES"}

// WithFlags defines the service's settings as flags on fs (-server_name,
// -server_address, -registry, -broker, -tls_cert, -log_level...; run with
// -help for the list) and reads them when the service first needs its
// settings, once: call fs.Parse (flag.Parse for flag.CommandLine) before
// any other method of the service (Name, Registry, Server, Client, Broker,
// Start, Run). A flag wins over its MICRO_ environment variable; an option
// given in code wins over both.
func WithFlags(fs *flag.FlagSet) Option {
	for _, s := range settings {
		if fs.Lookup(s.flag) == nil {
			fs.String(s.flag, "", s.usage+" (env "+s.env+")")
		}
	}
	return func(o *options) { o.flags = fs }
}

// config is the settings read from the flags and the environment.
type config map[string]string // by environment variable name

// readConfig reads the environment, then the flags that were set, and
// refuses MICRO_ variables it does not know.
func readConfig(environ []string, fs *flag.FlagSet) (config, error) {
	c := config{}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.env] = true
	}
	for _, e := range otherEnv {
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
		return nil, fmt.Errorf("service: unknown environment variable %s (known: %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	if fs != nil {
		byFlag := map[string]string{}
		for _, s := range settings {
			byFlag[s.flag] = s.env
		}
		fs.Visit(func(f *flag.Flag) {
			if env, ok := byFlag[f.Name]; ok {
				c[env] = f.Value.String()
			}
		})
	}
	return c, nil
}

// resolve fills in what the options in code left open from the flags and
// the environment, then the defaults.
func resolve(o *options, environ []string) {
	c, err := readConfig(environ, o.flags)
	if err == nil {
		err = c.apply(o)
	}
	if err != nil {
		o.configErr = err
		fillDefaults(o)
		return
	}
	if o.registry == nil && o.registryErr == nil {
		// With its error, New returns a registry that fails every call
		// with it, so a client-only program is told too.
		if name := registryName(c); name == "mdns" {
			o.registry = mdns.NewRegistry(mdns.WithLogger(o.log()))
		} else {
			o.registry, o.registryErr = registry.New(name, c["MICRO_REGISTRY_ADDRESS"])
		}
		o.created = o.registry
	}
	fillDefaults(o)
}

// apply sets the options c has values for and o leaves open.
func (c config) apply(o *options) error {
	if o.name == "" {
		o.name = c["MICRO_SERVER_NAME"]
	}
	if o.version == "" {
		o.version = c["MICRO_SERVER_VERSION"]
	}
	if o.address == "" {
		o.address = c["MICRO_SERVER_ADDRESS"]
	}
	if addr := c["MICRO_REGISTRY_ADDRESS"]; addr != "" {
		if name := registryName(c); name == "mdns" || name == "memory" {
			return fmt.Errorf("service: MICRO_REGISTRY_ADDRESS=%q is set, but the %s registry takes no address", addr, name)
		}
	}
	if o.broker == nil {
		b, err := brokerFrom(c)
		if err != nil {
			return err
		}
		o.broker = b
	}
	if o.tlsConfig == nil {
		cfg, err := tlsFrom(c)
		if err != nil {
			return err
		}
		o.tlsConfig = cfg
	}
	if lvl := c["MICRO_LOG_LEVEL"]; lvl != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(lvl)); err != nil {
			return fmt.Errorf("service: MICRO_LOG_LEVEL=%q is not a level (debug, info, warn or error)", lvl)
		}
		slog.SetLogLoggerLevel(l)
	}
	return nil
}

// registryName is the registry implementation -registry or MICRO_REGISTRY
// names; mDNS, which needs no server, when neither does.
func registryName(c config) string {
	if n := c["MICRO_REGISTRY"]; n != "" {
		return n
	}
	return "mdns"
}

// brokerFrom returns the broker MICRO_BROKER names; nil for the built-in
// one. A plug-in (such as plugins/nats) is known once its package is
// imported.
func brokerFrom(c config) (broker.Broker, error) {
	name, addr := c["MICRO_BROKER"], c["MICRO_BROKER_ADDRESS"]
	switch name {
	case "", "direct":
		if addr != "" {
			return nil, fmt.Errorf("service: MICRO_BROKER_ADDRESS=%q is set, but the direct broker takes no address: it delivers over the service's own server", addr)
		}
		return nil, nil
	case "memory":
		if addr != "" {
			return nil, fmt.Errorf("service: MICRO_BROKER_ADDRESS=%q is set, but the memory broker takes no address", addr)
		}
		return memory.NewBroker(), nil
	}
	if f, ok := brokerplugin.Lookup(name); ok {
		b, err := f(addr)
		if err != nil {
			return nil, fmt.Errorf("service: MICRO_BROKER=%s: %w", name, err)
		}
		return b, nil
	}
	known := append([]string{"direct", "memory"}, brokerplugin.Names()...)
	return nil, fmt.Errorf("service: MICRO_BROKER=%q is not a known broker (known: %s); a plug-in registers itself when its package is imported",
		name, strings.Join(known, ", "))
}

// tlsFrom builds the TLS configuration MICRO_TLS_CERT, MICRO_TLS_KEY and
// MICRO_TLS_CA describe; nil when none is set. A CA makes TLS mutual:
// servers require client certificates it signed, and clients verify
// servers with it.
func tlsFrom(c config) (*tls.Config, error) {
	certFile, keyFile, caFile := c["MICRO_TLS_CERT"], c["MICRO_TLS_KEY"], c["MICRO_TLS_CA"]
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("service: MICRO_TLS_CERT and MICRO_TLS_KEY go together: set both or neither")
	case certFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("service: loading MICRO_TLS_CERT and MICRO_TLS_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("service: reading MICRO_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("service: MICRO_TLS_CA=%q holds no PEM certificate", caFile)
		}
		cfg.RootCAs, cfg.ClientCAs, cfg.ClientAuth = pool, pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
