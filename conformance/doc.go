// Package conformance runs connectrpc's conformance suite (the runner
// connectconformance, pinned in go.mod) against the runtime's server and
// client. The server runs the suite's full matrix (config/server.yaml):
// gRPC, Connect and gRPC-Web over HTTP/1.1 and HTTP/2, protobuf and JSON,
// identity and gzip, every stream type, cleartext and TLS with and without
// client certificates, Connect GET. The client runs the gRPC profile
// (config/client.yaml).
//
// cmd/server is the server under test and cmd/client the client under
// test; both are built on runtime/server, runtime/client and the code in
// internal/conformancepb, which internal/gen generates from the runner's
// own .proto files. TestConformance builds the three programs and runs the
// suite in server mode and in client mode; any failing case fails it:
// there is no known-failing list.
package conformance
