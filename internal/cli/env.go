package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/protoc-gen-micro/micro/internal/envconfig"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/status"

	// The registries MICRO_REGISTRY names without a plug-in.
	_ "github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	_ "github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// maxRecvMsgSize bounds one response or reflection answer, as a service's
// client does by default.
const maxRecvMsgSize = 4 << 20

// env is what a command runs with: its flags, the settings, and the
// registry, client and broker it makes when first needed.
type env struct {
	opts
	cfg            envconfig.Config
	stdin          io.Reader
	stdout, stderr io.Writer

	reg     registry.Registry
	sel     selector.Selector
	cli     client.Client
	brk     broker.Broker
	tls     *tls.Config
	tlsRead bool
}

// registry returns the registry MICRO_REGISTRY names, mDNS by default.
func (e *env) registry() (registry.Registry, error) {
	if e.reg != nil {
		return e.reg, nil
	}
	e.setLogger()
	if err := e.cfg.CheckRegistryAddress(); err != nil {
		return nil, err
	}
	r, err := e.cfg.NewRegistry(slog.Default())
	if err != nil {
		if strings.Contains(err.Error(), "not a known registry") {
			err = fmt.Errorf("MICRO_REGISTRY: %w; this micro knows only the registries compiled into it: a plug-in registry (e.g. plugins/etcd) must be compiled in, with a main in this repository that imports it and calls internal/cli's Main", err)
		}
		return nil, err
	}
	e.reg = r
	return r, nil
}

// setLogger keeps the registry's and broker's routine logging quiet: the
// command's output is its own. MICRO_LOG_LEVEL=debug shows it.
func (e *env) setLogger() {
	level := slog.LevelWarn
	if l, ok, err := e.cfg.LogLevel(); err == nil && ok {
		level = l
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})))
}

func (e *env) tlsConfig() (*tls.Config, error) {
	if !e.tlsRead {
		cfg, err := e.cfg.TLS()
		if err != nil {
			return nil, err
		}
		e.tls, e.tlsRead = cfg, true
	}
	return e.tls, nil
}

// client returns a client that finds nodes through the registry, or calls
// only -address when given.
func (e *env) client() (client.Client, error) {
	if e.cli != nil {
		return e.cli, nil
	}
	cfg, err := e.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithMaxRecvMsgSize(maxRecvMsgSize)}
	if cfg != nil {
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	if e.address == "" {
		r, err := e.registry()
		if err != nil {
			return nil, err
		}
		e.sel = selector.NewSelector(r)
		opts = append(opts, client.WithSelector(e.sel))
	}
	e.cli = client.NewClient(opts...)
	return e.cli, nil
}

// callOpts are the options of every call to service: -address.
func (e *env) callOpts() []client.CallOption {
	if e.address != "" {
		return []client.CallOption{client.WithAddress(e.address)}
	}
	return nil
}

// broker returns the broker MICRO_BROKER names: by default the direct one,
// publishing to the subscribers the registry lists.
func (e *env) broker() (broker.Broker, error) {
	if e.brk != nil {
		return e.brk, nil
	}
	b, err := e.cfg.Broker(slog.Default())
	var unknown *envconfig.UnknownBrokerError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("%w; this micro knows only the brokers compiled into it: a plug-in broker (e.g. plugins/nats) must be compiled in, with a main in this repository that imports it and calls internal/cli's Main", err)
	}
	if err != nil {
		return nil, err
	}
	if b == nil {
		r, err := e.registry()
		if err != nil {
			return nil, err
		}
		c, err := e.client()
		if err != nil {
			return nil, err
		}
		b = direct.NewBroker(direct.WithRegistry(r), direct.WithClient(c))
	}
	e.brk = b
	return b, nil
}

// close releases what the command made.
func (e *env) close() {
	if e.brk != nil {
		_ = e.brk.Disconnect()
	}
	if e.cli != nil {
		_ = e.cli.Close()
	} else if e.sel != nil {
		_ = e.sel.Close()
	}
	if e.reg != nil {
		_ = e.reg.Close()
	}
}

// where says where the registry looks, for messages about what it did not
// find: for mDNS, the interfaces it queries.
func (e *env) where() string {
	name := e.cfg.Registry()
	if name == "memory" {
		return "the memory registry (it holds only its own process's services: none, for micro)"
	}
	if name != "mdns" {
		if addr := e.cfg["MICRO_REGISTRY_ADDRESS"]; addr != "" {
			return fmt.Sprintf("the %s registry at %s", name, addr)
		}
		return fmt.Sprintf("the %s registry", name)
	}
	ifs := mdnsInterfaces()
	if len(ifs) == 0 {
		return "the mdns registry (no interface is up with multicast; choose with MICRO_MDNS_INTERFACES)"
	}
	return fmt.Sprintf("the mdns registry on %s (MICRO_MDNS_INTERFACES chooses)", strings.Join(ifs, ", "))
}

// mdnsInterfaces names the interfaces the mDNS registry queries: those in
// MICRO_MDNS_INTERFACES, or every one up with multicast.
func mdnsInterfaces() []string {
	if env := os.Getenv("MICRO_MDNS_INTERFACES"); env != "" {
		var names []string
		for _, n := range strings.Split(env, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return names
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var names []string
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			names = append(names, ifi.Name)
		}
	}
	return names
}

// notFound is the error for a service of which no node was found.
func (e *env) notFound(service string, waited time.Duration, err error) error {
	if st, ok := status.FromError(err); ok {
		err = errors.New(st.Message()) // the registry's words, without the RPC's
	}
	return fmt.Errorf("no node of %q found in %s after %v: %w", service, e.where(), waited.Round(time.Millisecond), err)
}
