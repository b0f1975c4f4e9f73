package selector_test

import (
	"context"
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

func ExampleNewSelector() {
	reg := memory.NewRegistry(memory.WithServices(&registry.Service{
		Name:  "greeter",
		Nodes: []*registry.Node{{ID: "a", Address: "10.0.0.1:8080"}, {ID: "b", Address: "10.0.0.2:8080"}},
	}))
	sel := selector.NewSelector(reg)
	defer sel.Close()

	// A retry excludes the node the first attempt went to.
	node, err := sel.Select(context.Background(), "greeter", []string{"10.0.0.1:8080"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(node.Address)
	sel.Mark("greeter", node, nil) // the call succeeded
	// Output: 10.0.0.2:8080
}

func ExampleWithHashKey() {
	reg := memory.NewRegistry(memory.WithServices(&registry.Service{
		Name: "carts",
		Nodes: []*registry.Node{
			{ID: "a", Address: "10.0.0.1:8080"}, {ID: "b", Address: "10.0.0.2:8080"}, {ID: "c", Address: "10.0.0.3:8080"},
		},
	}))
	sel := selector.NewSelector(reg, selector.WithStrategy(selector.ConsistentHash))
	defer sel.Close()

	// Every call for the same cart goes to the same node.
	ctx := selector.WithHashKey(context.Background(), "cart-1234")
	first, _ := sel.Select(ctx, "carts", nil)
	sel.Mark("carts", first, nil)
	again, _ := sel.Select(ctx, "carts", nil)
	sel.Mark("carts", again, nil)
	fmt.Println(first.Address == again.Address)
	// Output: true
}
