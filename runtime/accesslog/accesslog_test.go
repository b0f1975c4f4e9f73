package accesslog_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/logtest"
	"github.com/protoc-gen-micro/micro/runtime/accesslog"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// byMethod returns the one record of method, failing the test unless
// there is exactly one.
func byMethod(t *testing.T, recs []map[string]any, method string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, r := range recs {
		if r["method"] == "/greeter.v1.Greeter/"+method {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d records for %s, want 1: %v", len(found), method, recs)
	}
	return found[0]
}

// greeter answers every kind of call; SayHello fails with the code named
// by a request's name ("NotFound", "Internal").
type greeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (greeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	switch in.Name {
	case "NotFound":
		return status.New(status.NotFound, "no such greeting")
	case "Internal":
		return status.New(status.Internal, "broken")
	}
	out.Message = "Hello " + in.Name
	return nil
}

func (greeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	for i := 0; i < 3; i++ {
		if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
	return nil
}

func (greeter) LotsOfGreetings(ctx context.Context, s greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

func (greeter) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

// TestAccessLog makes one call of every kind, and two failing ones, through
// a client and a server that both log, and checks each line.
func TestAccessLog(t *testing.T) {
	leakcheck.Check(t)
	var srvLog, cliLog logtest.Recorder
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"),
		server.WithInterceptors(accesslog.Server(srvLog.Logger(slog.LevelInfo))))
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cli := client.NewClient(client.WithInterceptors(accesslog.Client(cliLog.Logger(slog.LevelInfo))))
	defer cli.Close()
	g := greeterpb.NewGreeterService("greeter", cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := client.WithAddress(srv.Address())

	req := &greeterpb.HelloRequest{Name: "World"}
	rsp, err := g.SayHello(ctx, req, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"NotFound", "Internal"} {
		if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, at, client.WithRetries(0)); status.CodeOf(err).String() != name {
			t.Fatalf("SayHello(%s) = %v", name, err)
		}
	}
	replies, err := g.LotsOfReplies(ctx, req, at)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := replies.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	greetings, err := g.LotsOfGreetings(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "bb"} {
		if err := greetings.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := greetings.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	chat, err := g.Chat(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Send(req); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != nil {
		t.Fatal(err)
	}
	chat.CloseSend()
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("Chat ended with %v", err)
	}
	// The server logs when a handler returns, which may be after the
	// client saw the end; Stop waits for every handler.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	reqBytes, rspBytes := float64(proto.Size(req)), float64(proto.Size(rsp))
	for side, l := range map[string]*logtest.Recorder{"server": &srvLog, "client": &cliLog} {
		recs := l.Records(t)
		if len(recs) != 6 {
			t.Fatalf("%s logged %d lines, want 6: %v", side, len(recs), recs)
		}
		for _, r := range recs {
			if r["msg"] != "rpc "+side {
				t.Errorf("%s line %v: msg %q", side, r, r["msg"])
			}
			_, hasPeer := r["peer"]
			if side == "server" {
				host, _, err := net.SplitHostPort(r["peer"].(string))
				if err != nil || host != "127.0.0.1" {
					t.Errorf("server line %v: peer not the client's loopback address", r)
				}
			} else if hasPeer {
				t.Errorf("client line %v has a peer", r)
			}
			if d, ok := r["duration"].(float64); !ok || d <= 0 {
				t.Errorf("%s line %v: duration %v", side, r, r["duration"])
			}
		}
		recs = recs[:0:0]
		for _, r := range l.Records(t) {
			if r["code"] == "OK" || r["method"] != "/greeter.v1.Greeter/SayHello" {
				recs = append(recs, r)
			}
		}
		check := func(method string, want map[string]any) {
			t.Helper()
			r := byMethod(t, recs, method)
			for k, v := range want {
				if r[k] != v {
					t.Errorf("%s %s: %s = %v, want %v (%v)", side, method, k, r[k], v, r)
				}
			}
			if _, ok := r["requests"]; ok != (method != "SayHello") {
				t.Errorf("%s %s: message counts present = %v", side, method, ok)
			}
		}
		check("SayHello", map[string]any{"code": "OK", "level": "INFO", "request_bytes": reqBytes, "response_bytes": rspBytes})
		check("LotsOfReplies", map[string]any{"code": "OK", "requests": float64(1), "responses": float64(3), "request_bytes": reqBytes, "response_bytes": 3 * rspBytes})
		check("LotsOfGreetings", map[string]any{"code": "OK", "requests": float64(2), "responses": float64(1),
			"request_bytes":  float64(proto.Size(&greeterpb.HelloRequest{Name: "a"}) + proto.Size(&greeterpb.HelloRequest{Name: "bb"})),
			"response_bytes": float64(proto.Size(&greeterpb.HelloReply{Message: "Hello a, bb"}))})
		check("Chat", map[string]any{"code": "OK", "requests": float64(1), "responses": float64(1), "request_bytes": reqBytes, "response_bytes": rspBytes})

		var failed []map[string]any
		for _, r := range l.Records(t) {
			if r["code"] != "OK" {
				failed = append(failed, r)
			}
		}
		if len(failed) != 2 {
			t.Fatalf("%s: failed calls logged %v", side, failed)
		}
		for _, r := range failed {
			want := map[string]string{"NotFound": "INFO", "Internal": "ERROR"}[r["code"].(string)]
			if want == "" || r["level"] != want || r["error"] == nil || r["response_bytes"] != float64(0) {
				t.Errorf("%s: failed call logged as %v; want level %q, an error and no response bytes", side, r, want)
			}
		}
	}
}

// TestAccessLogLevel: a call is not logged below the logger's level, and
// a call ending in a server fault is logged at ERROR even then.
func TestAccessLogLevel(t *testing.T) {
	leakcheck.Check(t)
	var out logtest.Recorder
	l := out.Logger(slog.LevelWarn)
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"), server.WithInterceptors(accesslog.Server(l)))
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cli := client.NewClient()
	defer cli.Close()
	g := greeterpb.NewGreeterService("greeter", cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"World", "NotFound", "Internal"} {
		g.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, client.WithAddress(srv.Address()), client.WithRetries(0))
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	recs := out.Records(t)
	if len(recs) != 1 || recs[0]["code"] != "Internal" || recs[0]["level"] != "ERROR" {
		t.Fatalf("at WARN, logged %v; want only the Internal failure", recs)
	}
}
