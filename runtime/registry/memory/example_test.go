package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

func ExampleNewRegistry() {
	ctx := context.Background()
	r := memory.NewRegistry()
	defer r.Close()
	w, _ := r.Watch(ctx, "greeter")
	defer w.Stop()

	_ = r.Register(ctx, &registry.Service{
		Name:    "greeter",
		Version: "v1",
		Nodes:   []*registry.Node{{ID: "greeter-1", Address: "127.0.0.1:8080"}},
	}, 90*time.Second)

	res, _ := w.Next()
	fmt.Println(res.Action, res.Service.Nodes[0].Address)
	services, _ := r.GetService(ctx, "greeter")
	fmt.Println(services[0].Version, services[0].Nodes[0].ID)
	// Output:
	// create 127.0.0.1:8080
	// v1 greeter-1
}
