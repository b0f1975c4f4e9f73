package main

import (
	"context"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/interop/testserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/testdata"
)

// TestRun serves TLS with explicit certificate flags, answers a grpc-go
// client, and stops when its context ends.
func TestRun(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", true, testdata.Path("server1.pem"), testdata.Path("server1.key"),
			func(addr string) { addrc <- addr })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	cfg, err := testserver.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	cc.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestBadCertificate(t *testing.T) {
	err := run(context.Background(), "127.0.0.1:0", true, "missing.pem", "missing.key", func(string) {
		t.Error("run served without its certificate")
	})
	if err == nil {
		t.Fatal("run with a missing certificate succeeded")
	}
}
