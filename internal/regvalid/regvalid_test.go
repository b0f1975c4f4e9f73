package regvalid

import (
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		s    *registry.Service
		want string
	}{
		{nil, "registry/x: register: service has no name"},
		{&registry.Service{}, "registry/x: register: service has no name"},
		{&registry.Service{Name: "a"}, `registry/x: register "a": service has no nodes`},
		{&registry.Service{Name: "a", Nodes: []*registry.Node{nil}}, `registry/x: register "a": node has no ID`},
		{&registry.Service{Name: "a", Nodes: []*registry.Node{{ID: "1"}, {}}}, `registry/x: register "a": node has no ID`},
	} {
		if err := Check("registry/x", tc.s); err == nil || err.Error() != tc.want {
			t.Errorf("Check(%+v) = %v, want %q", tc.s, err, tc.want)
		}
	}
	if err := Check("registry/x", &registry.Service{Name: "a", Nodes: []*registry.Node{{ID: "1"}}}); err != nil {
		t.Errorf("a valid service: %v", err)
	}
}
