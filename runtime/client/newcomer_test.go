package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// A call to a service the registry does not know fails with the
// registry's explanation, as Unavailable, and still matches both
// selector.ErrNoneAvailable and registry.ErrNotFound.
func TestServiceNotFoundKeepsExplanation(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	_, why := reg.GetService(context.Background(), "greeter")
	g := greeterpb.NewGreeterService("greeter", newTestClient(t, client.WithRegistry(reg)))
	_, callErr := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"})
	_, streamErr := g.Chat(context.Background())
	for name, err := range map[string]error{"call": callErr, "stream": streamErr} {
		if status.CodeOf(err) != status.Unavailable || !errors.Is(err, selector.ErrNoneAvailable) || !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("%s: %v, want Unavailable, ErrNoneAvailable and ErrNotFound", name, err)
		}
		if !strings.Contains(err.Error(), why.Error()) {
			t.Fatalf("%s: %q\nlacks the registry's explanation %q", name, err, why)
		}
	}
}
