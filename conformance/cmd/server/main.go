// Command server is the server under test of the gRPC conformance suite: it
// serves connectrpc.conformance.v1.ConformanceService with runtime/server
// and the generated handler registration.
//
// The runner (connectconformance --mode server) writes one size-delimited
// ServerCompatRequest to stdin; the server starts on 127.0.0.1 at a free
// port, with TLS and client certificates when asked, writes a
// ServerCompatResponse to stdout and serves until SIGTERM or SIGINT.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/conformance/internal/compat"
	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run() error {
	req := &conformancepb.ServerCompatRequest{}
	if err := compat.ReadDelimited(os.Stdin, req); err != nil {
		return fmt.Errorf("reading the ServerCompatRequest: %w", err)
	}
	srv, cert, err := newServer(req)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(srv.Address())
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return err
	}
	err = compat.WriteDelimited(os.Stdout, &conformancepb.ServerCompatResponse{
		Host:    host,
		Port:    uint32(port),
		PemCert: cert,
	})
	if err != nil {
		srv.Stop()
		return fmt.Errorf("writing the ServerCompatResponse: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return srv.Stop()
}

// newServer builds the server req asks for and returns it with the PEM
// certificate clients must trust (nil without TLS).
func newServer(req *conformancepb.ServerCompatRequest) (server.Server, []byte, error) {
	// One server serves every protocol on its one port, over HTTP/1.1 and
	// HTTP/2: the request says which it will use, not what to build.
	if req.GetProtocol() == conformancepb.Protocol_PROTOCOL_UNSPECIFIED {
		return nil, nil, fmt.Errorf("no protocol in the request")
	}
	opts := []server.Option{
		server.WithAddress("127.0.0.1:0"),
		// The runner ends us with SIGTERM once its calls are done; a
		// call still running then (a client that timed out) need not
		// hold up the exit.
		server.WithGracePeriod(time.Second),
	}
	if n := req.GetMessageReceiveLimit(); n > 0 {
		opts = append(opts, server.WithMaxRecvMsgSize(int(n)))
	}
	var pemCert []byte
	if req.GetUseTls() {
		cfg, err := tlsConfig(req)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, server.WithTLSConfig(cfg))
		pemCert = req.GetServerCreds().GetCert()
	}
	srv := server.NewServer(opts...)
	if err := srv.Handle(serviceDesc(), conformanceService{}); err != nil {
		return nil, nil, err
	}
	return srv, pemCert, nil
}

// serviceDesc is the generated method table without the method the suite
// expects a server not to implement, so that the runtime answers it as it
// answers any method it does not serve.
func serviceDesc() *server.ServiceDesc {
	desc := conformancepb.ConformanceServiceServiceDesc
	desc.Methods = slices.DeleteFunc(slices.Clone(desc.Methods), func(m server.MethodDesc) bool {
		return m.Method.Procedure == conformancepb.ConformanceServiceUnimplementedProcedure
	})
	return &desc
}

// tlsConfig serves the certificate the runner gave and, when it gave a
// client certificate too, requires and verifies that one from every client.
func tlsConfig(req *conformancepb.ServerCompatRequest) (*tls.Config, error) {
	creds := req.GetServerCreds()
	if len(creds.GetCert()) == 0 || len(creds.GetKey()) == 0 {
		return nil, errors.New("TLS requested without server credentials")
	}
	cert, err := tls.X509KeyPair(creds.GetCert(), creds.GetKey())
	if err != nil {
		return nil, fmt.Errorf("server credentials: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCert := req.GetClientTlsCert(); len(clientCert) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(clientCert) {
			return nil, errors.New("client certificate: no PEM certificate found")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
