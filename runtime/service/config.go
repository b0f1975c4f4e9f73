package service

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/protoc-gen-micro/micro/internal/envconfig"
)

// The settings a service reads from the command line (see WithFlags) and
// the environment are envconfig's, shared with the micro command. Options
// given in code win over both; a flag wins over its environment variable.

// WithFlags defines the service's settings as flags on fs (-server_name,
// -server_address, -registry, -broker, -tls_cert, -log_level...; run with
// -help for the list) and reads them when the service first needs its
// settings, once: call fs.Parse (flag.Parse for flag.CommandLine) before
// any other method of the service (Name, Registry, Server, Client, Broker,
// Start, Run). A flag wins over its MICRO_ environment variable; an option
// given in code wins over both.
func WithFlags(fs *flag.FlagSet) Option {
	envconfig.DefineFlags(fs)
	return func(o *options) { o.flags = fs }
}

// resolve fills in what the options in code left open from the flags and
// the environment, then the defaults.
func resolve(o *options, environ []string) {
	c, err := envconfig.Read(environ, o.flags)
	if err != nil {
		err = fmt.Errorf("service: %w", err)
	} else {
		err = apply(c, o)
	}
	if err != nil {
		o.configErr = err
		fillDefaults(o)
		return
	}
	if o.registry == nil && o.registryErr == nil {
		// With its error, New returns a registry that fails every call
		// with it, so a client-only program is told too.
		o.registry, o.registryErr = c.NewRegistry(o.log())
		o.created = o.registry
	}
	fillDefaults(o)
}

// apply sets the options c has values for and o leaves open.
func apply(c envconfig.Config, o *options) error {
	if o.name == "" {
		o.name = c["MICRO_SERVER_NAME"]
	}
	if o.version == "" {
		o.version = c["MICRO_SERVER_VERSION"]
	}
	if o.address == "" {
		o.address = c["MICRO_SERVER_ADDRESS"]
	}
	if err := c.CheckRegistryAddress(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if o.broker == nil {
		b, err := c.Broker(o.log())
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		o.broker = b
	}
	if o.tlsConfig == nil {
		cfg, err := c.TLS()
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		o.tlsConfig = cfg
	}
	l, ok, err := c.LogLevel()
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if ok {
		slog.SetLogLoggerLevel(l)
	}
	return nil
}
