package memory

import "github.com/protoc-gen-micro/micro/runtime/registry"

func init() {
	registry.RegisterFactory("memory", func() (registry.Registry, error) { return NewRegistry(), nil })
}
