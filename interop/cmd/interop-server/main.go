// Command interop-server serves grpc.testing.TestService on the micro
// runtime, for grpc's interop clients:
//
//	go run ./cmd/interop-server --port=10000 [--use_tls]
//
// Its flags are those of grpc-go's interop server that apply, plus --host.
// With --use_tls and no certificate flags it serves the certificate grpc's
// interop servers use, which clients trust with --use_test_ca
// --server_host_override=foo.test.google.fr.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/protoc-gen-micro/micro/interop/testserver"
)

func main() {
	var (
		host     = flag.String("host", "", "address to listen on; all interfaces when empty")
		port     = flag.Int("port", 10000, "port to listen on")
		useTLS   = flag.Bool("use_tls", false, "serve TLS instead of cleartext HTTP/2")
		certFile = flag.String("tls_cert_file", "", "TLS certificate; grpc's interop test certificate when empty")
		keyFile  = flag.String("tls_key_file", "", "TLS key; grpc's interop test key when empty")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, net.JoinHostPort(*host, strconv.Itoa(*port)), *useTLS, *certFile, *keyFile, func(addr string) {
		log.Printf("interop server listening on %s (tls: %v)", addr, *useTLS)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop-server:", err)
		os.Exit(1)
	}
}

// run serves on addr until ctx ends, calling ready with the address it
// listens on once it does.
func run(ctx context.Context, addr string, useTLS bool, certFile, keyFile string, ready func(addr string)) error {
	var cfg *tls.Config
	if useTLS {
		var err error
		cfg, err = tlsConfig(certFile, keyFile)
		if err != nil {
			return err
		}
	}
	s, err := testserver.Start(addr, cfg)
	if err != nil {
		return err
	}
	ready(s.Address())
	<-ctx.Done()
	return s.Stop()
}

func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return testserver.TLSConfig()
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
