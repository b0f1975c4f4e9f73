package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/protoc-gen-micro/micro/internal/cli"
	_ "github.com/protoc-gen-micro/micro/plugins/etcd" // MICRO_REGISTRY=etcd
	_ "github.com/protoc-gen-micro/micro/plugins/nats" // MICRO_BROKER=nats
)

// micro is the micro command (see cmd/micro) built with the etcd registry
// and the NATS broker compiled in, which the installed one lacks:
//
//	MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=10.77.0.1:2379 cluster micro services
//
// It exits with micro's own status.
func micro(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
	return nil
}
