// Package h2spec runs the h2spec HTTP/2 conformance checker against the
// micro server and against grpc-go's, and fails when ours fails a case that
// grpc-go's passes. It holds only the test:
//
//	cd interop && go test -run TestH2spec -v ./h2spec
//
// h2spec is built from the version that interop/go.mod pins (a tool
// directive). Each server runs in a child process, this test binary run
// again, so that a panic in a server is reported with its stack instead of
// ending the test before h2spec has finished.
package h2spec
