package handler_test

import (
	"context"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/gomicro-port/handler"
	pb "github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	micro "github.com/protoc-gen-micro/micro/gomicro"
	"github.com/protoc-gen-micro/micro/gomicro/client"
	"github.com/protoc-gen-micro/micro/gomicro/errors"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// TestPortedService runs the ported service on loopback as its main does,
// with an in-memory registry, and calls it through a generated client.
func TestPortedService(t *testing.T) {
	leakcheck.Check(t)
	service := micro.NewService(
		micro.Name("greeter"),
		micro.Address("127.0.0.1:0"),
		micro.Registry(memory.NewRegistry()),
		micro.HandleSignal(false),
		micro.WrapHandler(handler.LogWrapper),
		micro.WrapClient(handler.FromWrapper("greeter")),
	)
	g := handler.New(service.Client())
	if err := handler.Register(service, g); err != nil {
		t.Fatal(err)
	}
	if err := service.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := service.Stop(); err != nil {
			t.Error(err)
		}
	}()
	greeter := pb.NewGreeterService("greeter", client.Native(service.Client()))

	for _, tc := range []struct {
		ctx  context.Context
		name string
		want string
	}{
		{context.Background(), "Ann", "Hello Ann, from greeter"},
		{metadata.NewContext(context.Background(), metadata.Metadata{"X-From": "cli"}), "Bo", "Hello Bo, from cli"},
		{context.Background(), "twice:Cy", "Hello Cy, from greeter Hello Cy, from greeter"},
	} {
		rsp, err := greeter.SayHello(tc.ctx, &pb.HelloRequest{Name: tc.name})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if rsp.Message != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, rsp.Message, tc.want)
		}
	}
	// Every greeting was announced and heard before SayHello returned.
	got := g.Greetings()
	want := []string{"Hello Ann, from greeter", "Hello Bo, from cli", "Hello Cy, from greeter"}
	if len(got) != len(want) {
		t.Fatalf("remembered %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("remembered[%d] = %q, want %q", i, got[i], want[i])
		}
	}

	for _, tc := range []struct {
		name string
		code int32
		grpc status.Code
	}{{"", 400, status.InvalidArgument}, {"<b>", 403, status.PermissionDenied}} {
		_, err := greeter.SayHello(context.Background(), &pb.HelloRequest{Name: tc.name})
		if e := errors.FromError(err); e == nil || e.Code != tc.code || e.Id != "greeter.SayHello" {
			t.Errorf("%q: got %v, want code %d", tc.name, err, tc.code)
		}
		if status.CodeOf(err) != tc.grpc {
			t.Errorf("%q: gRPC code %v, want %v", tc.name, status.CodeOf(err), tc.grpc)
		}
	}
}
