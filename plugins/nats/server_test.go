package nats

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testServer is a real nats-server with JetStream, in this process, on a
// random loopback port. restart shuts it down and starts it again on the
// same port and store, as a server restart in production would.
type testServer struct {
	t    testing.TB
	dir  string
	port int
	max  int32                 // max_payload; 0 for the server's default
	auth func(*server.Options) // sets the server's authentication, if any
	s    *server.Server
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	ts := &testServer{t: t, dir: t.TempDir(), port: -1}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	o := &server.Options{
		Host: "127.0.0.1", Port: ts.port, JetStream: true, StoreDir: ts.dir,
		MaxPayload: ts.max, NoLog: true, NoSigs: true,
	}
	if ts.auth != nil {
		ts.auth(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		ts.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		ts.t.Fatal("nats-server did not start")
	}
	ts.s = s
	ts.port = s.Addr().(*net.TCPAddr).Port
}

func (ts *testServer) stop() {
	if ts.s != nil {
		ts.s.Shutdown()
		ts.s.WaitForShutdown()
		ts.s = nil
	}
}

func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	ts.start()
}

func (ts *testServer) url() string { return ts.s.ClientURL() }
