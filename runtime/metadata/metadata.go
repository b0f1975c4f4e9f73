// Package metadata carries gRPC custom metadata: the header fields a call
// sends besides the protocol's own, and the headers and trailers it receives.
//
// Keys are lower-case. Values of keys ending in "-bin" are binary; the
// transport base64-encodes them on the wire, callers see raw bytes as strings.
// metadata does not touch the wire itself.
package metadata

import (
	"context"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
)

// MD maps lower-case keys to their values. A key may carry several values.
type MD map[string][]string

// New returns an MD with one value per key of m, keys lower-cased.
func New(m map[string]string) MD {
	md := make(MD, len(m))
	for k, v := range m {
		md[strings.ToLower(k)] = append(md[strings.ToLower(k)], v)
	}
	return md
}

// Pairs returns an MD from alternating keys and values. It panics on an odd
// count, as a programming error.
func Pairs(kv ...string) MD {
	if len(kv)%2 == 1 {
		panic("metadata: Pairs got an odd number of arguments")
	}
	md := make(MD, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k := strings.ToLower(kv[i])
		md[k] = append(md[k], kv[i+1])
	}
	return md
}

// Len returns the number of keys.
func (md MD) Len() int { return len(md) }

// Get returns the values of key (case-insensitive).
func (md MD) Get(key string) []string { return md[strings.ToLower(key)] }

// Value returns the first value of key, or "".
func (md MD) Value(key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (md MD) Set(key string, vals ...string) {
	if len(vals) == 0 {
		return
	}
	md[strings.ToLower(key)] = vals
}

// Append adds values to key.
func (md MD) Append(key string, vals ...string) {
	if len(vals) == 0 {
		return
	}
	k := strings.ToLower(key)
	md[k] = append(md[k], vals...)
}

// Delete removes key.
func (md MD) Delete(key string) { delete(md, strings.ToLower(key)) }

// Copy returns a deep copy.
func (md MD) Copy() MD {
	out := make(MD, len(md))
	for k, v := range md {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Join merges several MDs into a new one, appending values of shared keys.
func Join(mds ...MD) MD {
	out := MD{}
	for _, md := range mds {
		for k, v := range md {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

// NewOutgoingContext returns a context carrying md, to be sent with calls
// made with it. It replaces any outgoing metadata already in ctx.
func NewOutgoingContext(ctx context.Context, md MD) context.Context {
	return context.WithValue(ctx, mdctx.OutgoingKey{}, mdctx.Outgoing{MD: md})
}

// AppendToOutgoingContext returns a context whose outgoing metadata has the
// key/value pairs added. It does not copy the existing MD.
func AppendToOutgoingContext(ctx context.Context, kv ...string) context.Context {
	if len(kv)%2 == 1 {
		panic("metadata: AppendToOutgoingContext got an odd number of arguments")
	}
	o, _ := ctx.Value(mdctx.OutgoingKey{}).(mdctx.Outgoing)
	added := make([][]string, len(o.Added)+1)
	copy(added, o.Added)
	pairs := make([]string, len(kv))
	for i := range kv {
		if i%2 == 0 {
			pairs[i] = strings.ToLower(kv[i])
		} else {
			pairs[i] = kv[i]
		}
	}
	added[len(added)-1] = pairs
	return context.WithValue(ctx, mdctx.OutgoingKey{}, mdctx.Outgoing{MD: o.MD, Added: added})
}

// FromOutgoingContext returns a copy of the outgoing metadata of ctx.
func FromOutgoingContext(ctx context.Context) (MD, bool) {
	o, ok := ctx.Value(mdctx.OutgoingKey{}).(mdctx.Outgoing)
	if !ok {
		return nil, false
	}
	out := MD(o.MD).Copy()
	for _, pairs := range o.Added {
		for i := 0; i < len(pairs); i += 2 {
			out[pairs[i]] = append(out[pairs[i]], pairs[i+1])
		}
	}
	return out, true
}

// NewIncomingContext returns a context carrying md as metadata received.
func NewIncomingContext(ctx context.Context, md MD) context.Context {
	return context.WithValue(ctx, mdctx.IncomingKey{}, md)
}

// FromIncomingContext returns the metadata received with the call of ctx.
func FromIncomingContext(ctx context.Context) (MD, bool) {
	switch v := ctx.Value(mdctx.IncomingKey{}).(type) {
	case MD:
		return v, true
	case mdctx.Source:
		return v.IncomingMetadata(), true
	}
	return nil, false
}

// ValueFromIncomingContext returns the values of key received with the call.
func ValueFromIncomingContext(ctx context.Context, key string) []string {
	md, ok := FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	return md.Get(key)
}
