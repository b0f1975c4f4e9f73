package client_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/transport"
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

// checkConnectError fails unless err is the one-sentence failure to
// connect to addr, Unavailable and still marked transport.ErrUnprocessed.
func checkConnectError(t *testing.T, what string, err error, addr string) {
	t.Helper()
	shape := regexp.MustCompile(`^rpc error: code = Unavailable desc = client: cannot connect to ` + regexp.QuoteMeta(addr) +
		` \(service "greeter"\): dial tcp ` + regexp.QuoteMeta(addr) + `: connect: connection refused$`)
	if !shape.MatchString(err.Error()) || strings.Contains(err.Error(), "not processed") {
		t.Errorf("%s: %q\nwant it to match %s", what, err, shape)
	}
	if status.CodeOf(err) != status.Unavailable || !errors.Is(err, transport.ErrUnprocessed) {
		t.Errorf("%s: %v: want Unavailable marked transport.ErrUnprocessed", what, err)
	}
}

// A node that refuses connections fails a call without retries with one
// sentence naming the address, the service and the OS error.
func TestConnectErrorReadsAsOneSentence(t *testing.T) {
	leakcheck.Check(t)
	dead := deadAddr(t)
	g := greeterpb.NewGreeterService("greeter", newTestClient(t))
	_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{}, client.WithAddress(dead), client.WithRetries(0))
	checkConnectError(t, "call", err, dead)
	_, err = g.Chat(context.Background(), client.WithAddress(dead), client.WithRetries(0))
	checkConnectError(t, "stream", err, dead)
}

// A refused connection is still retried on another node, and the
// selector hears of it as the node's fault, with the same error.
func TestConnectErrorIsRetried(t *testing.T) {
	leakcheck.Check(t)
	dead, live := deadAddr(t), serveGreeter(t, nil).Address()
	for _, stream := range []bool{false, true} {
		sel := &ordered{nodes: []*registry.Node{{ID: "dead", Address: dead}, {ID: "live", Address: live}}}
		g := greeterpb.NewGreeterService("greeter", newTestClient(t, client.WithSelector(sel), client.WithRetries(1)))
		var err error
		if stream {
			var s greeterpb.Greeter_ChatService
			if s, err = g.Chat(context.Background()); err == nil {
				s.Close()
			}
		} else {
			_, err = g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "r"})
		}
		if err != nil {
			t.Fatalf("stream %v: %v, want the retry on the live node to succeed", stream, err)
		}
		sel.mu.Lock()
		marks := sel.marks
		sel.mu.Unlock()
		if len(marks) == 0 || marks[0].addr != dead {
			t.Fatalf("stream %v: marks %v, want the dead node's first", stream, marks)
		}
		checkConnectError(t, "mark of the dead node", marks[0].err, dead)
	}
}

// ordered is a selector that offers its nodes in order, skipping excluded
// ones, and records what Mark hears.
type ordered struct {
	nodes []*registry.Node
	mu    sync.Mutex
	marks []mark
}

type mark struct {
	addr string
	err  error
}

func (s *ordered) Select(_ context.Context, _ string, exclude []string) (*registry.Node, error) {
	for _, n := range s.nodes {
		if !slices.Contains(exclude, n.Address) {
			return n, nil
		}
	}
	return nil, selector.ErrNoneAvailable
}

func (s *ordered) Mark(_ string, n *registry.Node, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, mark{n.Address, err})
}

func (s *ordered) Close() error   { return nil }
func (s *ordered) String() string { return "ordered" }
