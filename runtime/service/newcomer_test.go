package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// A client-only program (a service that is never started, used for its
// Client) with a mistyped MICRO_REGISTRY gets the registry's explanation
// from its first call, not a nil-pointer panic, and Start gives it too.
func TestClientOnlyUnknownRegistry(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("MICRO_REGISTRY", "etdc")
	_, want := registry.New("etdc", "")
	svc := service.NewService(service.WithName("greeter.client"))
	defer svc.Stop()
	cli := svc.Client()
	for _, stream := range []bool{false, true} {
		var err error
		if stream {
			_, err = cli.Stream(context.Background(), "echo", echoMethod)
		} else {
			err = cli.Call(context.Background(), "echo", echoMethod, wrapperspb.String("hi"), new(wrapperspb.StringValue))
		}
		if err == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Fatalf("stream %v: err = %v\nwant it to contain %q", stream, err, want)
		}
		if code := status.CodeOf(err); code != status.Unavailable {
			t.Errorf("stream %v: code = %v, want Unavailable", stream, code)
		}
	}
	if err := svc.Start(); err == nil || !errors.Is(err, want) && !strings.Contains(err.Error(), want.Error()) {
		t.Fatalf("Start = %v, want %v", err, want)
	}
}
