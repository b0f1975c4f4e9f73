package registry_test

import (
	"reflect"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func TestServiceCloneIsDeep(t *testing.T) {
	s := &registry.Service{
		Name: "greeter", Version: "v1",
		Metadata:  map[string]string{"k": "v"},
		Endpoints: []*registry.Endpoint{{Name: "/a/B", Metadata: map[string]string{"stream": "unary"}}},
		Nodes:     []*registry.Node{{ID: "1", Address: "x", Metadata: map[string]string{"k": "v"}}},
	}
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("Clone = %+v, want %+v", c, s)
	}
	c.Metadata["k"] = "changed"
	c.Endpoints[0].Metadata["stream"] = "changed"
	c.Nodes[0].Metadata["k"] = "changed"
	c.Nodes[0].Address = "changed"
	if s.Metadata["k"] != "v" || s.Endpoints[0].Metadata["stream"] != "unary" || s.Nodes[0].Metadata["k"] != "v" || s.Nodes[0].Address != "x" {
		t.Fatalf("changing the clone changed the original: %+v", s)
	}
	if (*registry.Service)(nil).Clone() != nil {
		t.Fatal("Clone of nil is not nil")
	}
	// Nil endpoints and nodes stay nil rather than panic.
	holes := &registry.Service{Name: "greeter", Endpoints: []*registry.Endpoint{nil}, Nodes: []*registry.Node{nil}}
	if c := holes.Clone(); !reflect.DeepEqual(c, holes) {
		t.Fatalf("Clone = %+v, want %+v", c, holes)
	}
}
