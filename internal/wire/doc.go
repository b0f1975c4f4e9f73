// Package wire holds the gRPC wire encodings that the public packages keep
// out of their API: the grpc-status and grpc-message trailers, the
// google.rpc.Status of grpc-status-details-bin, and the content type. The
// transport, the client, the server and the broker share them.
package wire
