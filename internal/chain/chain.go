// Package chain applies interceptors, the first outermost, for the client,
// the server and the service.
package chain

import (
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Unary wraps f, a unary call of m, in ics.
func Unary(ics []interceptor.Interceptor, m *spec.Method, f interceptor.UnaryFunc) interceptor.UnaryFunc {
	for i := len(ics) - 1; i >= 0; i-- {
		f = ics[i].WrapUnary(m, f)
	}
	return f
}

// StreamingClient wraps f, the opening of a stream of m, in ics.
func StreamingClient(ics []interceptor.Interceptor, m *spec.Method, f interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	for i := len(ics) - 1; i >= 0; i-- {
		f = ics[i].WrapStreamingClient(m, f)
	}
	return f
}

// StreamingHandler wraps f, the handler of a streaming m, in ics.
func StreamingHandler(ics []interceptor.Interceptor, m *spec.Method, f interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	for i := len(ics) - 1; i >= 0; i-- {
		f = ics[i].WrapStreamingHandler(m, f)
	}
	return f
}
