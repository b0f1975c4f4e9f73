// Package bench compares our runtime with grpc-go and connect-go on the
// bench.v1.Echo service (proto/bench/v1/echo.proto): Go benchmarks of each
// server under one client and of each client against one server
// (bench_test.go), and cmd/compare, which measures each server as a
// separate process pinned to one core. README.md says how to run them.
//
// It is a module of its own so that the runtime's module does not depend on
// grpc-go or connect-go.
package bench

//go:generate go run ./internal/gen
