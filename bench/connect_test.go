package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
)

// BenchmarkConnectHTTP1 drives our server and connect-go's with the same
// client, connect-go's, speaking the Connect protocol with JSON over
// HTTP/1.1: unary calls of 16 bytes in parallel, as the gRPC unary rows
// run. Names read BenchmarkConnectHTTP1/rpc=ROW/impl=SERVER; benchratio
// sets ours beside connect-go's.
func BenchmarkConnectHTTP1(b *testing.B) {
	connectJSONUnary(b, func(b *testing.B) http.RoundTripper {
		tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false}
		b.Cleanup(tr.CloseIdleConnections)
		return tr
	})
}

// BenchmarkConnectHTTP2 is BenchmarkConnectHTTP1 over cleartext HTTP/2
// (h2c, prior knowledge): every call a stream of one connection. Our
// server serves these on its transport's web streams; connect-go's on
// x/net's HTTP/2 server behind h2c.
func BenchmarkConnectHTTP2(b *testing.B) {
	connectJSONUnary(b, func(b *testing.B) http.RoundTripper {
		tr := &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}
		b.Cleanup(tr.CloseIdleConnections)
		return tr
	})
}

// connectJSONUnary runs the Connect JSON unary row against both servers,
// each with a client on a transport of its own from newTransport.
func connectJSONUnary(b *testing.B, newTransport func(*testing.B) http.RoundTripper) {
	servers := startServers(b, []string{"micro", "connect"})
	for _, impl := range []string{"micro", "connect"} {
		b.Run("rpc=connect-json-unary-16B/impl="+impl, func(b *testing.B) {
			c := connect.NewClient[benchv1.Msg, benchv1.Msg](&http.Client{Transport: newTransport(b)},
				"http://"+servers[impl].Addr+benchv1.EchoUnaryProcedure, connect.WithProtoJSON())
			payload := bytes.Repeat([]byte{'x'}, 16)
			if _, err := c.CallUnary(context.Background(), connect.NewRequest(&benchv1.Msg{Payload: payload})); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(16)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					rsp, err := c.CallUnary(ctx, connect.NewRequest(&benchv1.Msg{Payload: payload}))
					if err != nil {
						b.Error(err)
						return
					}
					if len(rsp.Msg.Payload) != 16 {
						b.Errorf("echoed %d bytes, want 16", len(rsp.Msg.Payload))
						return
					}
				}
			})
		})
	}
}
