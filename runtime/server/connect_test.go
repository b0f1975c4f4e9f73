package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// detailsHello answers SayHello("details") with NOT_FOUND and a detail.
type detailsHello struct{ hello }

func (g detailsHello) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "details" {
		s, err := status.New(status.NotFound, "no such person").WithDetails(wrapperspb.String("why"))
		if err != nil {
			return err
		}
		return s
	}
	return g.hello.SayHello(ctx, in, out)
}

// TestCurl runs the README's curl line, as written, against the greeter,
// then a Connect GET and an error with details: over HTTP/1.1 and HTTP/2
// (h2c with prior knowledge; ALPN h2 over TLS), in cleartext and over TLS,
// on the port that serves gRPC over HTTP/2 too. CI installs curl and sets
// MICROTEST_REQUIRE_CURL, so that there the test fails instead of
// skipping.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("MICROTEST_REQUIRE_CURL") != "" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	leakcheck.Check(t)
	// run returns the body curl printed and the HTTP version it used.
	run := func(t *testing.T, args ...string) (body, version string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		args = append([]string{"-sS", "--max-time", "10", "-w", "\n%{http_version}"}, args...)
		out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %q: %v: %s", args, err, out)
		}
		i := strings.LastIndexByte(string(out), '\n')
		return string(out[:i]), string(out[i+1:])
	}
	ca := testcert.NewCA(t)
	caFile := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsOpt := server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "curl").TLS}})
	for _, c := range []struct {
		name, scheme, version string
		flags                 []string
		opts                  []server.Option
	}{
		{"http1", "http", "1.1", nil, nil},
		{"h2c", "http", "2", []string{"--http2-prior-knowledge"}, nil},
		{"tls-http1", "https", "1.1", []string{"--http1.1", "--cacert", caFile}, []server.Option{tlsOpt}},
		{"tls-h2", "https", "2", []string{"--http2", "--cacert", caFile}, []server.Option{tlsOpt}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startGreeter(t, detailsHello{}, c.opts...)
			base := c.scheme + "://" + srv.Address() + "/greeter.v1.Greeter/SayHello"
			for _, k := range []struct {
				name string
				args []string
				want string
			}{
				{"unary", []string{"-H", "content-type: application/json", "-d", `{"name":"World"}`, base}, `{"message":"Hello World"}`},
				{"GET", []string{"-G", "--data-urlencode", `message={"name":"Get"}`, "-d", "encoding=json", "-d", "connect=v1", base}, `{"message":"Hello Get"}`},
				{"error with details", []string{"-H", "content-type: application/json", "-d", `{"name":"details"}`, base},
					`{"code":"not_found","message":"no such person","details":[{"type":"google.protobuf.StringValue","value":"CgN3aHk","debug":"why"}]}`},
			} {
				got, version := run(t, append(append([]string{}, c.flags...), k.args...)...)
				if got != k.want || version != c.version {
					t.Fatalf("%s: got %q over HTTP/%s, want %q over HTTP/%s", k.name, got, version, k.want, c.version)
				}
			}
			if c.scheme == "http" {
				wellBehaved(t, srv.Address())
			}
		})
	}
}

// TestCORS: WithCORS lets pages from the allowed origins call with Connect
// (preflight and call); other origins, and servers without it, get no
// CORS headers.
func TestCORS(t *testing.T) {
	leakcheck.Check(t)
	const allowed = "https://app.example"
	call := func(t *testing.T, addr, method, origin string) *http.Response {
		t.Helper()
		body := strings.NewReader(`{"name":"CORS"}`)
		if method == http.MethodOptions {
			body = strings.NewReader("")
		}
		req, err := http.NewRequest(method, "http://"+addr+"/greeter.v1.Greeter/SayHello", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type,connect-protocol-version")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		rsp, err := http1Client(t, nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if method == http.MethodPost && (rsp.StatusCode != 200 || string(b) != `{"message":"Hello CORS"}`) {
			t.Fatalf("POST from %s: %s %q", origin, rsp.Status, b)
		}
		return rsp
	}
	srv := startServer(t, server.WithCORS(allowed))
	pre := call(t, srv.Address(), http.MethodOptions, allowed)
	if pre.StatusCode/100 != 2 || pre.Header.Get("Access-Control-Allow-Origin") != allowed ||
		!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "connect-protocol-version") {
		t.Fatalf("preflight from an allowed origin: %s %v", pre.Status, pre.Header)
	}
	if got := call(t, srv.Address(), http.MethodPost, allowed).Header.Get("Access-Control-Allow-Origin"); got != allowed {
		t.Fatalf("call from an allowed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := call(t, srv.Address(), http.MethodPost, "https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("call from another origin: Access-Control-Allow-Origin %q", got)
	}
	plain := startServer(t)
	if got := call(t, plain.Address(), http.MethodPost, allowed).Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("without WithCORS: Access-Control-Allow-Origin %q", got)
	}
}

// blockingGreeter's SayHello waits for release.
type blockingGreeter struct {
	greeterpb.GreeterHandler
	entered chan struct{}
	release chan struct{}
}

func (g blockingGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	g.entered <- struct{}{}
	<-g.release
	out.Message = "Hello " + in.Name
	return nil
}

// TestStopConnectInFlight: a Connect call over HTTP/1.1 in flight when
// Stop starts gets its answer, with Connection: close.
func TestStopConnectInFlight(t *testing.T) {
	leakcheck.Check(t)
	g := blockingGreeter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := startGreeter(t, g)
	c := rawHTTP1(t, srv.Address())
	body := `{"name":"drain"}`
	fmt.Fprintf(c, "POST /greeter.v1.Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	<-g.entered
	draining := make(chan struct{})
	server.OnHTTP1Shutdown(srv, func() { close(draining) })
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	<-draining
	close(g.release)
	rsp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != 200 || string(b) != `{"message":"Hello drain"}` || !rsp.Close {
		t.Fatalf("call in flight at Stop: %s %q, Connection: close %v", rsp.Status, b, rsp.Close)
	}
	expectEOF(t, c)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
