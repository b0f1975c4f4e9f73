package mdns

import (
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// The registry made by registry.New("mdns") uses the default options and
// the environment (MICRO_MDNS_INTERFACES); close it when done.
func init() {
	registry.RegisterFactory("mdns", func(address string) (registry.Registry, error) {
		if address != "" {
			return nil, fmt.Errorf("registry/mdns takes no address (got %q)", address)
		}
		return NewRegistry(), nil
	})
}
