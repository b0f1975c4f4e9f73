// Package regvalid checks what every registry implementation requires of a
// service it registers. It is internal so that the implementations in this
// repository share the check and its error texts without making them part
// of package registry's API; it is not a place for what one registry
// alone refuses.
package regvalid

import (
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Check returns an error unless s has a name, at least one node, and an ID
// on every node. impl names the registry in the error, such as
// "registry/memory".
func Check(impl string, s *registry.Service) error {
	switch {
	case s == nil || s.Name == "":
		return fmt.Errorf("%s: register: service has no name", impl)
	case len(s.Nodes) == 0:
		return fmt.Errorf("%s: register %q: service has no nodes", impl, s.Name)
	}
	for _, n := range s.Nodes {
		if n == nil || n.ID == "" {
			return fmt.Errorf("%s: register %q: node has no ID", impl, s.Name)
		}
	}
	return nil
}
