package etcd_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/logtest"
	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
	micro "github.com/protoc-gen-micro/micro/runtime/service"
)

// A service run with MICRO_REGISTRY=etcd and MICRO_REGISTRY_ADDRESS
// registers in etcd, where another process's registry finds it, and
// leaves when it stops. The registry logs through the service's logger,
// naming the service and node.
func TestServiceFromEnvironment(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("MICRO_REGISTRY", "etcd")
	t.Setenv("MICRO_REGISTRY_ADDRESS", shared.addr())
	t.Setenv("MICRO_SERVER_NAME", "env-greeter")
	t.Setenv("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
	other := newRegistry(t, "")
	w := registrytest.Watch(t, other, "env-greeter")

	var logs logtest.Recorder
	svc := micro.NewService(micro.WithSignal(false), micro.WithLogger(logs.Logger(slog.LevelInfo)))
	if got := svc.Registry().String(); got != "etcd" {
		t.Fatalf("MICRO_REGISTRY=etcd gave registry %q", got)
	}
	etcd.LoggerOf(svc.Registry()).Info("registry/etcd: probe")
	if recs := logs.Records(t); len(recs) != 1 || recs[0]["service"] != "env-greeter" || !strings.HasPrefix(recs[0]["node"].(string), "env-greeter-") {
		t.Fatalf("the registry logged %v; want one line naming service env-greeter and its node", recs)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	res := next(t, w)
	if res.Action != registry.Create || len(res.Service.Nodes) != 1 ||
		res.Service.Nodes[0].Address != svc.Server().Address() || !strings.HasPrefix(res.Service.Nodes[0].ID, "env-greeter-") {
		t.Fatalf("watch saw %s %+v; want the Create of the service's node at %s", res.Action, res.Service.Nodes, svc.Server().Address())
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if res := next(t, w); res.Action != registry.Delete {
		t.Fatalf("after Stop the watch saw %s, want Delete", res.Action)
	}
}
