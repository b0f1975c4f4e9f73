package etcd_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// A registry on a cluster of three; a service registers with a TTL and
// refreshes it more often than that, and a lookup answers from the cache.
func ExampleNewRegistry() {
	r, err := etcd.NewRegistry(
		etcd.WithEndpoints("10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"),
		etcd.WithDialTimeout(3*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // withdraws the node

	ctx := context.Background()
	greeter := &registry.Service{
		Name:    "greeter",
		Version: "v1",
		Nodes:   []*registry.Node{{ID: "greeter-1", Address: "10.0.0.7:8080"}},
	}
	if err := r.Register(ctx, greeter, 90*time.Second); err != nil {
		log.Fatal(err)
	}
	services, err := r.GetService(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(services[0].Nodes[0].Address)
}

// Selecting the registry by name, as a service does with MICRO_REGISTRY=etcd
// and MICRO_REGISTRY_ADDRESS once the package is imported (even as
// import _ "github.com/protoc-gen-micro/micro/plugins/etcd").
func Example_byName() {
	r, err := registry.New("etcd", "10.0.0.1:2379,10.0.0.2:2379")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	fmt.Println(r.String())
}
