package mdns_test

import (
	"context"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// What the mDNS registry says when it finds no service (the interfaces
// queried, the time waited, the multicast hint) reaches the selector's
// error and the client's, which still match ErrNoneAvailable and
// ErrNotFound and are Unavailable.
func TestNotFoundExplanationReachesCaller(t *testing.T) {
	leakcheck.Check(t)
	r := newRegistry(t, mdns.WithMaxWait(100*time.Millisecond))
	explained := regexp.MustCompile(`^.*selector: no node available: registry/mdns: service "missing" not found: no answer after querying lo \(IPv4.*\) for 1[0-9]{2}ms; .*multicast .* may be blocked`)

	sel := selector.NewSelector(r)
	defer sel.Close()
	_, err := sel.Select(context.Background(), "missing", nil)
	if !errors.Is(err, selector.ErrNoneAvailable) || !errors.Is(err, registry.ErrNotFound) || !explained.MatchString(err.Error()) {
		t.Fatalf("Select = %v\nwant ErrNoneAvailable and ErrNotFound matching %s", err, explained)
	}

	c := client.NewClient(client.WithRegistry(r))
	defer c.(io.Closer).Close()
	_, err = greeterpb.NewGreeterService("missing", c).SayHello(context.Background(), &greeterpb.HelloRequest{})
	if status.CodeOf(err) != status.Unavailable || !errors.Is(err, selector.ErrNoneAvailable) || !errors.Is(err, registry.ErrNotFound) || !explained.MatchString(err.Error()) {
		t.Fatalf("call = %v\nwant Unavailable, ErrNoneAvailable and ErrNotFound matching %s", err, explained)
	}
}
