package server_test

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// TestCurl runs the README's curl line, as written, against the greeter:
// Connect unary JSON over HTTP/1.1, in cleartext and over TLS, on the port
// that serves gRPC over HTTP/2 too. CI installs curl and sets
// MICROTEST_REQUIRE_CURL, so that there the test fails instead of skipping.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("MICROTEST_REQUIRE_CURL") != "" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	leakcheck.Check(t)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %q: %v: %s", args, err, out)
		}
		return string(out)
	}
	const want = `{"message":"Hello World"}`
	t.Run("cleartext", func(t *testing.T) {
		srv := startServer(t)
		got := run(t, "-H", "content-type: application/json", "-d", `{"name":"World"}`, "http://"+srv.Address()+"/greeter.v1.Greeter/SayHello")
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		wellBehaved(t, srv.Address())
	})
	t.Run("tls", func(t *testing.T) {
		ca := testcert.NewCA(t)
		srv := startServer(t, server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "curl").TLS}}))
		caFile := t.TempDir() + "/ca.pem"
		if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		got := run(t, "--http1.1", "--cacert", caFile, "-H", "content-type: application/json", "-d", `{"name":"World"}`,
			"https://"+srv.Address()+"/greeter.v1.Greeter/SayHello")
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
