package mdns

import "github.com/protoc-gen-micro/micro/runtime/registry"

// The registry made by registry.New("mdns") uses the default options and
// the environment (MICRO_MDNS_INTERFACES); close it when done.
func init() {
	registry.RegisterFactory("mdns", func() (registry.Registry, error) { return NewRegistry(), nil })
}
