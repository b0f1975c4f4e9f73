// Package mdctx holds the context keys under which runtime/metadata keeps
// metadata, so the transport and the broker can read and supply it without
// the metadata package exporting its plumbing.
package mdctx

import "context"

// IncomingKey is the context key of received metadata. Its value is a
// metadata.MD or a Source.
type IncomingKey struct{}

// Source supplies incoming metadata on demand. A server transport's stream
// implements it so that headers become a map only for handlers that ask.
type Source interface {
	IncomingMetadata() map[string][]string
}

// OutgoingKey is the context key of metadata to send; its value is an
// Outgoing.
type OutgoingKey struct{}

// Outgoing is metadata to send: a base map and the key/value pairs appended
// to it since, kept apart so that appending copies nothing.
type Outgoing struct {
	MD    map[string][]string
	Added [][]string
}

// RangeOutgoing calls f for every outgoing key/value pair of ctx without
// copying anything; the transport writes headers with it.
func RangeOutgoing(ctx context.Context, f func(key, value string)) {
	o, ok := ctx.Value(OutgoingKey{}).(Outgoing)
	if !ok {
		return
	}
	for k, vs := range o.MD {
		for _, v := range vs {
			f(k, v)
		}
	}
	for _, pairs := range o.Added {
		for i := 0; i < len(pairs); i += 2 {
			f(pairs[i], pairs[i+1])
		}
	}
}
