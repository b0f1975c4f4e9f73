package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// selfSigned returns a certificate for 127.0.0.1 and localhost and a pool
// that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testcert.NewCA(t)
	return ca.Issue(t, "micro test").TLS, ca.Pool
}

func TestTLS(t *testing.T) {
	leakcheck.Check(t)
	cert, pool := selfSigned(t)
	srv := serveGreeter(t, nil, server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		server.WithLimits(server.Limits{HandshakeTimeout: time.Hour}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	g := greeterAt(newTestClient(t, client.WithTLSConfig(&tls.Config{RootCAs: pool}), client.WithDialTimeout(time.Hour)), srv.Address())
	rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "tls"})
	if err != nil || rsp.Message != "Hello tls" {
		t.Fatalf("TLS call: %v %v", rsp, err)
	}
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		bs.Send(&greeterpb.HelloRequest{Name: "s"})
		if m, err := bs.Recv(); err != nil || m.Message != "Hello s" {
			t.Fatalf("TLS stream: %v %v", m, err)
		}
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("TLS stream end: %v", err)
	}

	// A client that does not trust the certificate fails to connect.
	untrusting := greeterAt(newTestClient(t, client.WithTLSConfig(&tls.Config{})), srv.Address())
	if _, err := untrusting.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("untrusted certificate: %v", err)
	}

	// A cleartext client gets Unavailable promptly rather than hanging:
	// the server's handshake timeout and the client's dial timeout are an
	// hour off, so Unavailable
	// rather than DeadlineExceeded means the call failed on the
	// rejection itself, before the context's deadline (a watchdog only).
	clear := greeterAt(newTestClient(t, client.WithDialTimeout(time.Hour)), srv.Address())
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	_, err = clear.SayHello(cctx, &greeterpb.HelloRequest{Name: "x"})
	if status.CodeOf(err) != status.Unavailable {
		t.Fatalf("cleartext client to TLS server: %v, want Unavailable", err)
	}
}

func TestTLSClientToCleartextServer(t *testing.T) {
	leakcheck.Check(t)
	_, pool := selfSigned(t)
	// The server's handshake timeout and the client's dial timeout are an
	// hour off: Unavailable rather than
	// DeadlineExceeded means the server rejected the TLS hello before the
	// context's deadline, which is only a watchdog.
	srv := serveGreeter(t, nil, server.WithLimits(server.Limits{HandshakeTimeout: time.Hour}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := greeterAt(newTestClient(t, client.WithTLSConfig(&tls.Config{RootCAs: pool}), client.WithDialTimeout(time.Hour)), srv.Address())
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("TLS client to cleartext server: %v, want Unavailable", err)
	}
}
