package service_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/logtest"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// panicky panics in SayHello when asked to.
type panicky struct {
	greeterpb.UnimplementedGreeterHandler
}

func (panicky) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "panic" {
		panic("asked to")
	}
	out.Message = "Hello " + in.Name
	return nil
}

// TestLogLinesNameServiceAndNode: every line the runtime logs for a
// service (its start and stop, its server's panic report, its built-in
// broker's warning, the access log) names the service and the node it
// registered.
func TestLogLinesNameServiceAndNode(t *testing.T) {
	leakcheck.Check(t)
	var out logtest.Recorder
	reg := memory.NewRegistry()
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"),
		service.WithSignal(false), service.WithRegistry(reg), service.WithAccessLog(),
		service.WithLogger(out.Logger(slog.LevelDebug)))
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), panicky{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := callCtx(t)
	svcs, err := reg.GetService(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	node := svcs[0].Nodes[0].ID

	g := greeterpb.NewGreeterService("greeter", svc.Client())
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "World"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "panic"}, client.WithRetries(0)); status.CodeOf(err) != status.Internal {
		t.Fatalf("a panicking handler answered %v", err)
	}
	if err := svc.Broker().Publish(ctx, "nobody.listens", &broker.Message{Body: []byte{}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}

	want := map[string]bool{
		"service started": false, "rpc server": false, "micro server: handler panicked": false,
		"broker/direct: no subscriber found for topic; messages published to it are dropped": false,
		"service stopped": false,
	}
	for _, r := range out.Records(t) {
		if r["service"] != "greeter" || r["node"] != node {
			t.Errorf("line %v does not name service greeter and node %s", r, node)
		}
		if _, ok := want[r["msg"].(string)]; ok {
			want[r["msg"].(string)] = true
		}
	}
	for msg, seen := range want {
		if !seen {
			t.Errorf("no line %q", msg)
		}
	}
}
