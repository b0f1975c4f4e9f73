// Package spec describes RPC methods: their path, stream type and idempotency.
//
// Generated code, the client and the server share these descriptions; spec holds
// no behaviour of its own.
package spec

// StreamType says how many messages each side of a method sends.
type StreamType uint8

const (
	// Unary: one request, one response.
	Unary StreamType = iota
	// ClientStream: many requests, one response.
	ClientStream
	// ServerStream: one request, many responses.
	ServerStream
	// BidiStream: many requests, many responses, in any interleaving.
	BidiStream
)

// String returns the stream type's name.
func (t StreamType) String() string {
	switch t {
	case Unary:
		return "unary"
	case ClientStream:
		return "client_stream"
	case ServerStream:
		return "server_stream"
	case BidiStream:
		return "bidi_stream"
	}
	return "unknown"
}

// Idempotency mirrors protobuf's MethodOptions.IdempotencyLevel. The client
// uses it to decide whether a call that may have reached a handler can be
// retried on another node.
type Idempotency uint8

const (
	// IdempotencyUnknown: the method may have side effects; never retried once sent.
	IdempotencyUnknown Idempotency = iota
	// NoSideEffects: option idempotency_level = NO_SIDE_EFFECTS.
	NoSideEffects
	// Idempotent: option idempotency_level = IDEMPOTENT.
	Idempotent
)

// String returns the protobuf name of the level.
func (i Idempotency) String() string {
	switch i {
	case NoSideEffects:
		return "NO_SIDE_EFFECTS"
	case Idempotent:
		return "IDEMPOTENT"
	}
	return "IDEMPOTENCY_UNKNOWN"
}

// Method describes one RPC method. Generated code declares one per method as a
// package-level variable, so passing a *Method costs nothing per call.
type Method struct {
	Service     string // fully qualified service name, e.g. "greeter.v1.Greeter"
	Name        string // method name, e.g. "SayHello"
	Procedure   string // HTTP/2 path, e.g. "/greeter.v1.Greeter/SayHello"
	StreamType  StreamType
	Idempotency Idempotency
}

// SupportPackageIsVersion1 is referenced by generated code; a generated file
// that needs a newer runtime fails to compile with a message naming this
// constant instead of a puzzling type error.
const SupportPackageIsVersion1 = true
