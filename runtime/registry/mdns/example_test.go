package mdns_test

import (
	"context"
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
)

// A server's registry announces its node; a client's registry, in
// another process or on another host of the LAN, finds it. (Here both
// run in the test's private network namespace, whose only interface is
// the loopback.)
func ExampleNewRegistry() {
	ctx := context.Background()
	server := mdns.NewRegistry()
	defer server.Close() // sends goodbyes
	client := mdns.NewRegistry()
	defer client.Close()

	err := server.Register(ctx, &registry.Service{
		Name:    "greeter",
		Version: "v1",
		Nodes:   []*registry.Node{{ID: "greeter-1", Address: ":8080"}},
	}, 0)
	if err != nil {
		panic(err)
	}
	services, err := client.GetService(ctx, "greeter")
	if err != nil {
		panic(err)
	}
	fmt.Println(services[0].Version, services[0].Nodes[0].ID, services[0].Nodes[0].Address)
	// Output: v1 greeter-1 127.0.0.1:8080
}
