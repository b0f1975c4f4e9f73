package etcd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func TestValueRoundTrip(t *testing.T) {
	s := &registry.Service{
		Name: "a/b", Version: "v1", Metadata: map[string]string{"k": "v"},
		Endpoints: []*registry.Endpoint{{Name: "/a.B/C", Metadata: map[string]string{"stream": "unary"}}},
	}
	n := &registry.Node{ID: "n/1%", Address: "127.0.0.1:1", Metadata: map[string]string{"protocol": "grpc"}}
	v, err := encode(s, n)
	if err != nil {
		t.Fatal(err)
	}
	k := key(defaultPrefix, s.Name, n.ID)
	if k != "/micro/registry/a%2Fb/n%2F1%25" {
		t.Fatalf("key = %q", k)
	}
	got, err := decode(defaultPrefix, []byte(k), v)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Clone()
	want.Nodes = []*registry.Node{n}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode = %+v, want %+v", got, want)
	}
	// The same value under another key is refused.
	if _, err := decode(defaultPrefix, []byte(key(defaultPrefix, "a", "b/n/1%")), v); err == nil {
		t.Fatal("a value under a key it does not name was accepted")
	}
	if _, err := decode(defaultPrefix, []byte(k), []byte(`{"name":"a/b","nodes":[{"id":"n/1%","metadata":{"p":"`+strings.Repeat("x", maxValueSize)+`"}}]}`)); err != errTooLarge {
		t.Fatalf("a value over 1 MiB: %v", err)
	}
}

// FuzzDecode feeds the value decoder what a hostile writer could put in
// the prefix: it must not panic, and what it accepts must encode and decode
// to the same (compared encoded: an empty list or map encodes as none).
func FuzzDecode(f *testing.F) {
	f.Add("svc/n1", []byte(`{"name":"svc","version":"v1","nodes":[{"id":"n1","address":"127.0.0.1:1"}]}`))
	f.Add("svc/n1", []byte(`{"name":"svc","endpoints":[null],"nodes":[{"id":"n1"}]}`))
	f.Add("svc/n1", []byte(`{"name":"svc","nodes":[null]}`))
	f.Add("svc/n1", []byte(`null`))
	f.Fuzz(func(t *testing.T, k string, v []byte) {
		s, err := decode(defaultPrefix, []byte(defaultPrefix+k), v)
		if err != nil {
			return
		}
		b, err := encode(s, s.Nodes[0])
		if err != nil {
			t.Fatalf("encode of a decoded value: %v", err)
		}
		again, err := decode(defaultPrefix, []byte(defaultPrefix+k), b)
		if err != nil {
			t.Fatalf("decode of a re-encoded value: %v", err)
		}
		if b2, err := encode(again, again.Nodes[0]); err != nil || string(b2) != string(b) {
			t.Fatalf("round trip changed %s to %s (%v)", b, b2, err)
		}
	})
}
