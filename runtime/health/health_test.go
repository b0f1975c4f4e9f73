package health_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// peer is a health server on loopback and our client calling it with
// dynamicpb messages.
type peer struct {
	t    *testing.T
	hs   *health.Server
	srv  server.Server
	cli  client.Client
	addr client.CallOption
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	hs := health.NewServer()
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := health.Register(srv, hs); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	cli := client.NewClient()
	t.Cleanup(func() {
		cli.Close()
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return &peer{t: t, hs: hs, srv: srv, cli: cli, addr: client.WithAddress(srv.Address())}
}

func request(service string) *dynamicpb.Message {
	req := grpcapi.NewRequest(grpcapi.HealthCheck)
	req.Set(req.Descriptor().Fields().ByName("service"), protoreflect.ValueOfString(service))
	return req
}

func statusOf(m *dynamicpb.Message) health.Status {
	return health.Status(m.Get(m.Descriptor().Fields().ByName("status")).Enum())
}

func (p *peer) check(service string) (health.Status, error) {
	rsp := grpcapi.NewResponse(grpcapi.HealthCheck)
	err := p.cli.Call(context.Background(), "health", grpcapi.HealthCheck, request(service), rsp, p.addr)
	return statusOf(rsp), err
}

func (p *peer) list() (map[string]health.Status, error) {
	rsp := grpcapi.NewResponse(grpcapi.HealthList)
	if err := p.cli.Call(context.Background(), "health", grpcapi.HealthList, grpcapi.NewRequest(grpcapi.HealthList), rsp, p.addr); err != nil {
		return nil, err
	}
	out := map[string]health.Status{}
	rsp.Get(rsp.Descriptor().Fields().ByName("statuses")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out[k.String()] = statusOf(v.Message().Interface().(*dynamicpb.Message))
		return true
	})
	return out, nil
}

// watch opens a Watch call; next returns each status it is sent.
func (p *peer) watch(service string) (next func() (health.Status, error), stop func()) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := p.cli.Stream(ctx, "health", grpcapi.HealthWatch, p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := st.SendMsg(request(service)); err != nil {
		p.t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		p.t.Fatal(err)
	}
	next = func() (health.Status, error) {
		rsp := grpcapi.NewResponse(grpcapi.HealthWatch)
		err := st.RecvMsg(rsp)
		return statusOf(rsp), err
	}
	stop = func() { st.Close(); cancel() }
	p.t.Cleanup(stop)
	return next, stop
}

func wantCode(t *testing.T, err error, code status.Code) {
	t.Helper()
	if status.CodeOf(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

func TestCheck(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	if st, err := p.check(""); err != nil || st != health.Serving {
		t.Fatalf("Check(\"\") = %v, %v; want SERVING", st, err)
	}
	_, err := p.check("greeter.v1.Greeter")
	wantCode(t, err, status.NotFound)

	p.hs.SetServingStatus("greeter.v1.Greeter", health.NotServing)
	if st, err := p.check("greeter.v1.Greeter"); err != nil || st != health.NotServing {
		t.Fatalf("Check = %v, %v; want NOT_SERVING", st, err)
	}
}

func TestWatch(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	next, _ := p.watch("greeter.v1.Greeter")
	// An unknown service: SERVICE_UNKNOWN at once, and the call goes on.
	if st, err := next(); err != nil || st != health.ServiceUnknown {
		t.Fatalf("first status %v, %v; want SERVICE_UNKNOWN", st, err)
	}
	p.hs.SetServingStatus("greeter.v1.Greeter", health.Serving)
	if st, err := next(); err != nil || st != health.Serving {
		t.Fatalf("after SetServingStatus: %v, %v; want SERVING", st, err)
	}
	// A repeat is not sent; the next change is.
	p.hs.SetServingStatus("greeter.v1.Greeter", health.Serving)
	p.hs.SetServingStatus("other", health.NotServing)
	p.hs.SetServingStatus("greeter.v1.Greeter", health.NotServing)
	if st, err := next(); err != nil || st != health.NotServing {
		t.Fatalf("after the change: %v, %v; want NOT_SERVING", st, err)
	}
}

func TestList(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	p.hs.SetServingStatus("a", health.NotServing)
	got, err := p.list()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[""] != health.Serving || got["a"] != health.NotServing {
		t.Fatalf("List = %v", got)
	}
	// Up to 100 statuses are listed, as grpc-go does; one more is refused.
	for i := len(got); i < 100; i++ {
		p.hs.SetServingStatus(fmt.Sprint("svc", i), health.Serving)
	}
	if got, err := p.list(); err != nil || len(got) != 100 {
		t.Fatalf("List of 100: %d statuses, %v", len(got), err)
	}
	p.hs.SetServingStatus("one-too-many", health.Serving)
	_, err = p.list()
	wantCode(t, err, status.ResourceExhausted)
}

func TestShutdownResume(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	p.hs.SetServingStatus("a", health.Serving)
	next, _ := p.watch("a")
	if st, err := next(); err != nil || st != health.Serving {
		t.Fatalf("first status %v, %v", st, err)
	}

	p.hs.Shutdown()
	// The watcher hears NOT_SERVING, then its call ends, so that it does
	// not hold a graceful stop open.
	if st, err := next(); err != nil || st != health.NotServing {
		t.Fatalf("after Shutdown: %v, %v; want NOT_SERVING", st, err)
	}
	_, err := next()
	wantCode(t, err, status.Unavailable)
	for _, name := range []string{"", "a"} {
		if st, err := p.check(name); err != nil || st != health.NotServing {
			t.Fatalf("Check(%q) after Shutdown = %v, %v", name, st, err)
		}
	}
	p.hs.SetServingStatus("a", health.Serving) // ignored
	if st, _ := p.check("a"); st != health.NotServing {
		t.Fatalf("SetServingStatus after Shutdown took effect: %v", st)
	}

	p.hs.Resume()
	for _, name := range []string{"", "a"} {
		if st, err := p.check(name); err != nil || st != health.Serving {
			t.Fatalf("Check(%q) after Resume = %v, %v", name, st, err)
		}
	}
	next, _ = p.watch("a")
	if st, err := next(); err != nil || st != health.Serving {
		t.Fatalf("Watch after Resume: %v, %v", st, err)
	}
	p.hs.SetServingStatus("a", health.NotServing)
	if st, err := next(); err != nil || st != health.NotServing {
		t.Fatalf("Watch after Resume, change: %v, %v", st, err)
	}
}

func TestWatchLongName(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	name := make([]byte, 1025)
	for i := range name {
		name[i] = 'a'
	}
	next, _ := p.watch(string(name))
	_, err := next()
	wantCode(t, err, status.InvalidArgument)
	next, _ = p.watch(string(name[:1024]))
	if st, err := next(); err != nil || st != health.ServiceUnknown {
		t.Fatalf("Watch of a 1 KiB name: %v, %v", st, err)
	}
}

func TestRegisterNil(t *testing.T) {
	if err := health.Register(server.NewServer(), nil); err == nil {
		t.Fatal("Register of a nil *Server succeeded")
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[health.Status]string{health.Unknown: "UNKNOWN", health.Serving: "SERVING",
		health.NotServing: "NOT_SERVING", health.ServiceUnknown: "SERVICE_UNKNOWN", 7: "Status(7)"} {
		if got := st.String(); got != want {
			t.Errorf("%d: %q, want %q", int32(st), got, want)
		}
	}
}

// TestCheckOverConnect: browsers and curl reach the health service with
// the Connect protocol, over HTTP/1.1 and HTTP/2, as gRPC clients do.
func TestCheckOverConnect(t *testing.T) {
	leakcheck.Check(t)
	p := newPeer(t)
	h1 := &http.Transport{}
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	h2 := &http.Transport{}
	h2.Protocols = new(http.Protocols)
	h2.Protocols.SetUnencryptedHTTP2(true)
	for _, tr := range []*http.Transport{h1, h2} {
		defer tr.CloseIdleConnections()
		for _, c := range []struct{ service, code, body string }{
			{"", "200 HTTP/1.1", `{"status":"SERVING"}`},
			{"nope", "404 HTTP/1.1", `"code":"not_found"`},
		} {
			rsp, err := (&http.Client{Transport: tr}).Post("http://"+p.srv.Address()+"/grpc.health.v1.Health/Check",
				"application/json", strings.NewReader(`{"service":"`+c.service+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			want := strings.Replace(c.code, "HTTP/1.1", "HTTP/"+map[bool]string{true: "2.0", false: "1.1"}[tr == h2], 1)
			if got := fmt.Sprintf("%d %s", rsp.StatusCode, rsp.Proto); got != want || !strings.Contains(string(b), c.body) {
				t.Fatalf("Check(%q): %s %s, want %s with %s", c.service, got, b, want, c.body)
			}
		}
	}
}
