package memory

import (
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func init() {
	registry.RegisterFactory("memory", func(address string) (registry.Registry, error) {
		if address != "" {
			return nil, fmt.Errorf("registry/memory takes no address (got %q)", address)
		}
		return NewRegistry(), nil
	})
}
