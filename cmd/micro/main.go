// Command micro lists, watches, describes, calls, health-checks and
// publishes to the services of this toolkit, found the way the services
// find each other (mDNS by default; MICRO_REGISTRY and the other MICRO_
// variables as for a service).
//
//	go install github.com/protoc-gen-micro/micro/cmd/micro@latest
//	micro help
//
// Exit status: 0 on success, 1 when something other than an RPC failed
// (no node found, no reflection, bad input), 2 on a usage error, and 64
// plus the gRPC status code when an RPC failed (68 for DeadlineExceeded).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/protoc-gen-micro/micro/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
