// Command client is the client under test of the gRPC conformance suite: it
// makes the calls the runner describes with runtime/client and the
// generated ConformanceService client, each sent to the runner's reference
// server with client.WithAddress, so no registry is involved.
//
// The runner (connectconformance --mode client) writes size-delimited
// ClientCompatRequests to stdin; the client runs them concurrently and
// writes a ClientCompatResponse for each to stdout, in the order they
// finish. At the end of its input it waits for the calls in flight, then
// exits.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/protoc-gen-micro/micro/conformance/internal/compat"
	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/client"
)

func main() {
	parallel := flag.Int("p", 16, "how many calls run at once")
	flag.Parse()
	if *parallel < 1 {
		fmt.Fprintln(os.Stderr, "client: -p must be at least 1")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdin, os.Stdout, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// run answers every request read from in on out, running up to parallel
// calls at once.
func run(ctx context.Context, in io.Reader, out io.Writer, parallel int) error {
	clients := &clientCache{clients: map[string]client.Client{}}
	defer clients.close()

	var (
		wg       sync.WaitGroup
		slots    = make(chan struct{}, parallel)
		outMu    sync.Mutex
		writeErr error
	)
	defer wg.Wait()
	for {
		req := &conformancepb.ClientCompatRequest{}
		if err := compat.ReadDelimited(in, req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			resp := &conformancepb.ClientCompatResponse{TestName: req.GetTestName()}
			if result, err := invoke(ctx, clients, req); err != nil {
				resp.Result = &conformancepb.ClientCompatResponse_Error{
					Error: &conformancepb.ClientErrorResult{Message: err.Error()},
				}
			} else {
				resp.Result = &conformancepb.ClientCompatResponse_Response{Response: result}
			}
			outMu.Lock()
			defer outMu.Unlock()
			if err := compat.WriteDelimited(out, resp); err != nil && writeErr == nil {
				writeErr = err
				fmt.Fprintln(os.Stderr, "client: writing a response:", err)
			}
		}()
	}
}

// clientCache keeps one client per protocol, TLS setup and receive limit, so that
// calls to the same server share its pooled connection as calls of a real
// program would.
type clientCache struct {
	mu      sync.Mutex
	clients map[string]client.Client
}

func (c *clientCache) get(req *conformancepb.ClientCompatRequest) (client.Client, error) {
	creds := req.GetClientTlsCreds()
	p := protocol(req)
	key := fmt.Sprintf("%d|%x|%x|%x|%d", p, sha256.Sum256(req.GetServerTlsCert()),
		sha256.Sum256(creds.GetCert()), sha256.Sum256(creds.GetKey()), req.GetMessageReceiveLimit())
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[key]; ok {
		return cl, nil
	}
	// One attempt per call: the suite checks what a call did, not how it
	// failed over.
	opts := []client.Option{client.WithRetries(0), client.WithProtocol(p)}
	if n := req.GetMessageReceiveLimit(); n > 0 {
		opts = append(opts, client.WithMaxRecvMsgSize(int(n)))
	}
	if len(req.GetServerTlsCert()) > 0 {
		cfg, err := tlsConfig(req)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	cl := client.NewClient(opts...)
	c.clients[key] = cl
	return cl, nil
}

func (c *clientCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		if closer, ok := cl.(interface{ Close() error }); ok {
			closer.Close()
		}
	}
}

// tlsConfig trusts the server's certificate and presents the client
// certificate the runner gave, if any.
func tlsConfig(req *conformancepb.ClientCompatRequest) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(req.GetServerTlsCert()) {
		return nil, errors.New("server certificate: no PEM certificate found")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if creds := req.GetClientTlsCreds(); creds != nil {
		cert, err := tls.X509KeyPair(creds.GetCert(), creds.GetKey())
		if err != nil {
			return nil, fmt.Errorf("client credentials: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
