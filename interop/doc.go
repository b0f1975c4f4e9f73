// Package interop runs grpc-go's interop test cases across the micro
// runtime: grpc-go's client against the micro server, the micro client
// against grpc-go's server, and the micro client against the micro server.
//
// The code is in the subpackages; this package holds only the tests:
//
//	cd interop && go test -race ./...
//
// testpb is the micro code of grpc.testing.TestService generated from the
// descriptor grpc-go compiled, testserver implements it as grpc-go's interop
// server does, adapter presents the micro client as grpc-go's client
// interface, and cmd/interop-server serves testserver for grpc's interop
// clients.
package interop
