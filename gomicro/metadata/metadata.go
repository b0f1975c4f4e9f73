// Package metadata is go-micro's metadata package
// (go-micro.dev/v5/metadata) on top of runtime/metadata.
//
// As in go-micro, one Metadata map in the context serves both directions:
// in a handler, FromContext returns what the caller sent (keys in
// canonical form, "X-User-Id", as go-micro's HTTP transport gives them),
// and a call made with that context, through a gomicro client, sends it on
// together with whatever NewContext, Set or MergeContext added. Keys are
// lower-cased on the wire; Get and Metadata.Get look a key up in any case.
//
// Use runtime/metadata directly in new code; this package is for porting.
package metadata

import (
	"context"
	"net/textproto"
	"strings"

	rtmd "github.com/protoc-gen-micro/micro/runtime/metadata"
)

// Metadata maps header names to one value each.
type Metadata map[string]string

type metadataKey struct{}

// Get returns the value of key, looked up as given, then in canonical and
// lower-case form.
func (md Metadata) Get(key string) (string, bool) {
	if v, ok := md[key]; ok {
		return v, ok
	}
	if v, ok := md[textproto.CanonicalMIMEHeaderKey(key)]; ok {
		return v, ok
	}
	v, ok := md[strings.ToLower(key)]
	return v, ok
}

// Set sets key to val.
func (md Metadata) Set(key, val string) { md[key] = val }

// Delete removes key in the forms Get looks it up in.
func (md Metadata) Delete(key string) {
	delete(md, key)
	delete(md, textproto.CanonicalMIMEHeaderKey(key))
	delete(md, strings.ToLower(key))
}

// Copy returns a copy of md.
func Copy(md Metadata) Metadata {
	out := make(Metadata, len(md))
	for k, v := range md {
		out[k] = v
	}
	return out
}

// FromContext returns a copy of the metadata of ctx: what NewContext, Set
// or MergeContext put there, otherwise the metadata the call of a handler's
// ctx arrived with (runtime/metadata's incoming metadata, first value of
// each key).
func FromContext(ctx context.Context) (Metadata, bool) {
	if md, ok := ctx.Value(metadataKey{}).(Metadata); ok {
		return Copy(md), true
	}
	in, ok := rtmd.FromIncomingContext(ctx)
	if !ok {
		return nil, false
	}
	md := make(Metadata, len(in))
	for k, vs := range in {
		if len(vs) > 0 {
			md[textproto.CanonicalMIMEHeaderKey(k)] = vs[0]
		}
	}
	return md, true
}

// NewContext returns a context carrying md, replacing what ctx carried.
func NewContext(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// Get returns the value of key in the metadata of ctx.
func Get(ctx context.Context, key string) (string, bool) {
	md, ok := FromContext(ctx)
	if !ok {
		return "", false
	}
	return md.Get(key)
}

// Set returns a context whose metadata has key set to v; an empty v
// removes key.
func Set(ctx context.Context, key, v string) context.Context {
	return MergeContext(ctx, Metadata{key: v}, true)
}

// Delete returns a context whose metadata lacks key.
func Delete(ctx context.Context, key string) context.Context {
	md, _ := FromContext(ctx)
	if md == nil {
		md = Metadata{}
	}
	md.Delete(key)
	return NewContext(ctx, md)
}

// MergeContext returns a context whose metadata is that of ctx with patch
// applied: a key already there is replaced only when overwrite is set, and
// a key with an empty value is removed.
func MergeContext(ctx context.Context, patch Metadata, overwrite bool) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	md, _ := FromContext(ctx)
	if md == nil {
		md = Metadata{}
	}
	for k, v := range patch {
		if _, ok := md.Get(k); ok && !overwrite {
			continue
		}
		md.Delete(k)
		if v != "" {
			md[k] = v
		}
	}
	return NewContext(ctx, md)
}

// Outgoing returns ctx with the metadata of ctx (FromContext) added to
// runtime/metadata's outgoing metadata, keys lower-cased, so that a call
// made with it sends them. The gomicro client calls it for every call and
// publication.
func Outgoing(ctx context.Context) context.Context {
	md, ok := FromContext(ctx)
	if !ok || len(md) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(md))
	for k, v := range md {
		kv = append(kv, strings.ToLower(k), v)
	}
	return rtmd.AppendToOutgoingContext(ctx, kv...)
}
