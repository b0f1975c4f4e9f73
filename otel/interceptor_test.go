package otelmicro_test

import (
	"context"
	"io"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

const sayHello = "greeter.v1.Greeter/SayHello"

func rpcAttrs(method string, code status.Code) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", "greeter.v1.Greeter"),
		attribute.String("rpc.method", method), attribute.Int("rpc.grpc.status_code", int(code)),
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestUnary: a unary call makes a client span and its child server span,
// with the RPC attributes, and carries baggage to the handler.
func TestUnary(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	_, g := startGreeter(t, tel)
	m, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(testContext(t), bag)

	rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "ann"})
	if err != nil || rsp.Message != "Hello ann of acme" {
		t.Fatalf("SayHello = %v, %v; want the tenant from the baggage", rsp, err)
	}
	cs, ss := tel.one(t, sayHello, trace.SpanKindClient), tel.one(t, sayHello, trace.SpanKindServer)
	checkChild(t, cs, ss)
	checkAttrs(t, cs, rpcAttrs("SayHello", status.OK)...)
	checkAttrs(t, ss, rpcAttrs("SayHello", status.OK)...)
	checkAttrs(t, ss, attribute.String("network.peer.address", "127.0.0.1"))
	if _, ok := attrs(ss)["network.peer.port"]; !ok {
		t.Error("server span has no network.peer.port")
	}
	if cs.Status().Code != codes.Unset || ss.Status().Code != codes.Unset {
		t.Errorf("span statuses of a successful call: client %v, server %v; want Unset", cs.Status(), ss.Status())
	}
}

// TestUnaryErrors: a failed call records its status code; the client span
// is an error for every code, the server span only for a server fault.
func TestUnaryErrors(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name        string
		code        status.Code
		serverError bool
	}{
		{"", status.InvalidArgument, false},
		{"boom", status.Internal, true},
		// Codes beyond gRPC's are recorded as Unknown, so that a peer
		// cannot make a metric series per code.
		{"code-99", status.Unknown, true},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			tel := newTelemetry(t)
			_, g := startGreeter(t, tel)
			_, err := g.SayHello(testContext(t), &greeterpb.HelloRequest{Name: tc.name})
			if code := status.CodeOf(err); code != tc.code && (tc.name != "code-99" || code != 99) {
				t.Fatalf("SayHello(%q) = %v, want %v", tc.name, err, tc.code)
			}
			cs, ss := tel.one(t, sayHello, trace.SpanKindClient), tel.one(t, sayHello, trace.SpanKindServer)
			checkChild(t, cs, ss)
			checkAttrs(t, cs, rpcAttrs("SayHello", tc.code)...)
			checkAttrs(t, ss, rpcAttrs("SayHello", tc.code)...)
			if cs.Status().Code != codes.Error || cs.Status().Description != status.Convert(err).Message() {
				t.Errorf("client span status %v, want Error %q", cs.Status(), status.Convert(err).Message())
			}
			if got := ss.Status().Code == codes.Error; got != tc.serverError {
				t.Errorf("server span status %v; want Error: %v", ss.Status(), tc.serverError)
			}
			dp := tel.histogram(t, "rpc.client.duration", rpcAttrs("SayHello", tc.code)...)
			if dp.Count != 1 {
				t.Errorf("rpc.client.duration count %d with code %v, want 1", dp.Count, tc.code)
			}
			if dp := tel.histogram(t, "rpc.server.responses_per_rpc", rpcAttrs("SayHello", tc.code)...); dp.Count != 1 || dp.Sum != 0 {
				t.Errorf("rpc.server.responses_per_rpc of a failed call: count %d sum %d, want 1 and 0", dp.Count, dp.Sum)
			}
		})
	}
}

// TestNested: a handler calling another service with its context makes a
// client span, the child of the server span of the call it serves, not a
// second server span.
func TestNested(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	_, g := startGreeter(t, tel)
	rsp, err := g.SayHello(testContext(t), &greeterpb.HelloRequest{Name: "relay"})
	if err != nil || rsp.Message != "relayed Hello ann" {
		t.Fatalf("SayHello = %v, %v", rsp, err)
	}
	clients, servers := tel.ended(sayHello, trace.SpanKindClient), tel.ended(sayHello, trace.SpanKindServer)
	if len(clients) != 2 || len(servers) != 2 {
		t.Fatalf("%d client and %d server spans, want 2 of each: %s", len(clients), len(servers), tel.names())
	}
	// Spans end innermost first: the inner call's server span, its client
	// span, then the outer call's.
	outerC, outerS := clients[1], servers[1]
	innerC, innerS := clients[0], servers[0]
	checkChild(t, outerC, outerS)
	checkChild(t, outerS, innerC)
	checkChild(t, innerC, innerS)
}

// TestMetrics: the metrics of one known unary call.
func TestMetrics(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	_, g := startGreeter(t, tel)
	req := &greeterpb.HelloRequest{Name: "ann"}
	rsp, err := g.SayHello(testContext(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ok := rpcAttrs("SayHello", status.OK)
	for _, tc := range []struct {
		metric string
		sum    int64
	}{
		{"rpc.client.request.size", int64(proto.Size(req))},
		{"rpc.client.response.size", int64(proto.Size(rsp))},
		{"rpc.server.request.size", int64(proto.Size(req))},
		{"rpc.server.response.size", int64(proto.Size(rsp))},
		{"rpc.client.requests_per_rpc", 1},
		{"rpc.client.responses_per_rpc", 1},
		{"rpc.server.requests_per_rpc", 1},
		{"rpc.server.responses_per_rpc", 1},
	} {
		if dp := tel.histogram(t, tc.metric, ok...); dp.Count != 1 || dp.Sum != tc.sum {
			t.Errorf("%s: count %d sum %d, want 1 and %d", tc.metric, dp.Count, dp.Sum, tc.sum)
		}
	}
	for _, name := range []string{"rpc.client.duration", "rpc.server.duration"} {
		if dp := tel.histogram(t, name, ok...); dp.Count != 1 {
			t.Errorf("%s: count %d, want 1", name, dp.Count)
		}
	}
}

// TestStreams: streaming calls make client and server spans, parent and
// child, ended when the stream ends, and count the messages.
func TestStreams(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	_, g := startGreeter(t, tel)
	ctx := testContext(t)

	chat, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ann", "bob"} {
		if err := chat.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		if _, err := chat.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if len(tel.ended("greeter.v1.Greeter/Chat", trace.SpanKindClient)) != 0 {
		t.Fatal("the client span of a stream ended before the stream")
	}
	if err := chat.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("Recv at the end: %v", err)
	}
	cs, ss := tel.one(t, "greeter.v1.Greeter/Chat", trace.SpanKindClient), tel.one(t, "greeter.v1.Greeter/Chat", trace.SpanKindServer)
	checkChild(t, cs, ss)
	checkAttrs(t, cs, rpcAttrs("Chat", status.OK)...)
	checkAttrs(t, ss, rpcAttrs("Chat", status.OK)...)
	chatOK := rpcAttrs("Chat", status.OK)
	for _, name := range []string{"rpc.client.requests_per_rpc", "rpc.client.responses_per_rpc", "rpc.server.requests_per_rpc", "rpc.server.responses_per_rpc"} {
		if dp := tel.histogram(t, name, chatOK...); dp.Count != 1 || dp.Sum != 2 {
			t.Errorf("%s of Chat: count %d sum %d, want 1 and 2", name, dp.Count, dp.Sum)
		}
	}
	if dp := tel.histogram(t, "rpc.server.request.size", chatOK...); dp.Count != 2 {
		t.Errorf("rpc.server.request.size of Chat: count %d, want one per message, 2", dp.Count)
	}

	// A client stream ends at its one response.
	up, err := g.LotsOfGreetings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ann", "bob", "cy"} {
		if err := up.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if rsp, err := up.CloseAndRecv(); err != nil || rsp.Message != "Hello ann, bob, cy" {
		t.Fatalf("CloseAndRecv = %v, %v", rsp, err)
	}
	cs = tel.one(t, "greeter.v1.Greeter/LotsOfGreetings", trace.SpanKindClient)
	checkChild(t, cs, tel.one(t, "greeter.v1.Greeter/LotsOfGreetings", trace.SpanKindServer))
	if dp := tel.histogram(t, "rpc.client.requests_per_rpc", rpcAttrs("LotsOfGreetings", status.OK)...); dp.Sum != 3 {
		t.Errorf("rpc.client.requests_per_rpc of LotsOfGreetings: %d, want 3", dp.Sum)
	}

	// A server stream's handler that is not implemented fails the call.
	down, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "ann"})
	if err == nil {
		_, err = down.Recv()
	}
	if status.CodeOf(err) != status.Unimplemented {
		t.Fatalf("LotsOfReplies: %v, want Unimplemented", err)
	}
	cs = tel.one(t, "greeter.v1.Greeter/LotsOfReplies", trace.SpanKindClient)
	ss = tel.one(t, "greeter.v1.Greeter/LotsOfReplies", trace.SpanKindServer)
	checkChild(t, cs, ss)
	checkAttrs(t, ss, rpcAttrs("LotsOfReplies", status.Unimplemented)...)
	if cs.Status().Code != codes.Error || ss.Status().Code != codes.Error {
		t.Errorf("statuses of an unimplemented stream: client %v, server %v; want Error", cs.Status(), ss.Status())
	}
}

// TestConcurrentCalls: calls from many goroutines share the interceptors'
// per-method state; each is counted once.
func TestConcurrentCalls(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	_, g := startGreeter(t, tel)
	ctx := testContext(t)
	const workers, calls = 8, 20
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range calls {
				if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "ann"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rpc.client.duration", "rpc.server.duration"} {
		if dp := tel.histogram(t, name, rpcAttrs("SayHello", status.OK)...); dp.Count != workers*calls {
			t.Errorf("%s: count %d, want %d", name, dp.Count, workers*calls)
		}
	}
	if n := len(tel.ended(sayHello, trace.SpanKindServer)); n != workers*calls {
		t.Errorf("%d server spans, want %d", n, workers*calls)
	}
}
