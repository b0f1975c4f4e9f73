package etcd_test

import (
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// TestMutualTLS: WithTLSConfig reaches an etcd that requires TLS and a
// client certificate; without it the registry cannot reach etcd.
func TestMutualTLS(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	cert, key, caFile := ca.WriteFiles(t, ca.Issue(t, "etcd"))
	clientTLS := ca.MutualConfig(ca.Issue(t, "client"))
	srv, err := newServerTLS(t.TempDir(), &transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: caFile, ClientCertAuth: true}, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)

	plain := newRegistry(t, srv.addr(), etcd.WithDialTimeout(time.Second))
	if _, err := plain.GetService(ctxT(t), "svc"); err == nil {
		t.Fatal("a registry without TLS read from an etcd that requires it")
	}
	r := newRegistry(t, srv.addr(), etcd.WithTLSConfig(clientTLS))
	w := registrytest.Watch(t, r, "svc")
	if err := r.Register(ctxT(t), service("svc", "v1", node("a", 8001)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Create, "a")
}
