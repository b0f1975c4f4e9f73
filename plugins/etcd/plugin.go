package etcd

import "github.com/protoc-gen-micro/micro/runtime/registry"

// The registry made by registry.New("etcd", address) talks to the
// comma-separated endpoints in address (127.0.0.1:2379 when it is empty)
// with the default options; close it when done.
func init() {
	registry.RegisterFactory("etcd", func(address string) (registry.Registry, error) {
		return NewRegistry(WithEndpoints(splitEndpoints(address)...))
	})
}
