package webrpc_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/logtest"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"google.golang.org/protobuf/proto"
)

func TestLimits(t *testing.T) {
	const max = 1 << 10
	for _, p := range start(t, &testGreeter{}, webrpc.Config{MaxRecvMsgSize: max}) {
		t.Run(p.name, func(t *testing.T) {
			exhausted := func(what string, rsp *http.Response, b []byte) {
				t.Helper()
				var ce connectError
				decodeJSON(t, b, &ce)
				if rsp.StatusCode != 429 || ce.Code != "resource_exhausted" {
					t.Fatalf("%s: %d %s", what, rsp.StatusCode, b)
				}
			}
			big := []byte(`{"name":"` + strings.Repeat("x", 2*max) + `"}`)
			rsp, b := do(t, p, "POST", sayHello, "application/json", big)
			exhausted("oversized body", rsp, b)

			// A gzip bomb: 4 MiB of zeros in about 4 KiB.
			bomb := gz(t, make([]byte, 4<<20))
			rsp, b = do(t, p, "POST", sayHello, "application/json", bomb[:min(len(bomb), max)], "Content-Encoding", "gzip")
			if rsp.StatusCode != 429 && rsp.StatusCode != 400 {
				t.Fatalf("truncated bomb: %d %s", rsp.StatusCode, b)
			}
			small := gz(t, make([]byte, 4*max))
			if len(small) > max {
				t.Fatalf("bomb of %d bytes does not fit the compressed limit", len(small))
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", small, "Content-Encoding", "gzip")
			exhausted("gzip bomb", rsp, b)

			q := url.Values{"encoding": {"json"}, "message": {string(big)}}
			rsp, b = do(t, p, "GET", sayHello+"?"+q.Encode(), "", nil)
			exhausted("long GET message", rsp, b)

			// Streaming: an envelope that claims 4 GiB, one that
			// inflates past the limit, and one cut short.
			huge := []byte{0, 0xff, 0xff, 0xff, 0xff, 'x'}
			for _, tc := range []struct {
				name, code string
				body       []byte
				hdr        []string
			}{
				{"huge envelope", "resource_exhausted", huge, nil},
				{"envelope bomb", "resource_exhausted", envelope(1, small), []string{"Connect-Content-Encoding", "gzip"}},
				{"truncated envelope", "invalid_argument", envelope(0, []byte(`{"name":"x"}`))[:9], nil},
				{"truncated prefix", "invalid_argument", []byte{0, 0}, nil},
				{"bad flags", "invalid_argument", envelope(0x40, []byte(`{}`)), nil},
			} {
				rsp, b := do(t, p, "POST", "/greeter.v1.Greeter/LotsOfGreetings", "application/connect+json", tc.body, tc.hdr...)
				fs := frames(t, b)
				var end endStream
				decodeJSON(t, fs[len(fs)-1].body, &end)
				if rsp.StatusCode != 200 || end.Error == nil || end.Error.Code != tc.code {
					t.Fatalf("%s: %d %s", tc.name, rsp.StatusCode, b)
				}
			}
			rsp, _ = do(t, p, "POST", sayHello, "application/grpc-web", huge)
			if rsp.Header.Get("Grpc-Status") != "8" {
				t.Fatalf("huge gRPC-Web envelope: %v", rsp.Header)
			}
			rsp, _ = do(t, p, "POST", sayHello, "application/grpc-web-text", []byte("!!!!"))
			if rsp.Header.Get("Grpc-Status") != "3" {
				t.Fatalf("grpc-web-text that is not base64: %v", rsp.Header)
			}
			// The server still answers.
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"after"}`))
			if rsp.StatusCode != 200 || !strings.Contains(string(b), "Hello after") {
				t.Fatalf("after the limits: %d %s", rsp.StatusCode, b)
			}
		})
	}
}

// TestDeadlines: the client's timeout ends the handler's context and the
// call with DEADLINE_EXCEEDED, also when the handler is blocked reading a
// body the client stopped sending.
func TestDeadlines(t *testing.T) {
	g := &testGreeter{entered: make(chan struct{}, 4)}
	for _, p := range start(t, g, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"wait"}`), "Connect-Timeout-Ms", "20")
			var ce connectError
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 504 || ce.Code != "deadline_exceeded" {
				t.Fatalf("Connect-Timeout-Ms: %d %s", rsp.StatusCode, b)
			}
			<-g.entered
			m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "wait"})
			rsp, _ = do(t, p, "POST", sayHello, "application/grpc-web", envelope(0, m), "Grpc-Timeout", "20m")
			if rsp.Header.Get("Grpc-Status") != "4" {
				t.Fatalf("grpc-timeout: %v", rsp.Header)
			}
			<-g.entered
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"x"}`), "Connect-Timeout-Ms", "12345678901")
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 400 || ce.Code != "invalid_argument" {
				t.Fatalf("malformed timeout: %d %s", rsp.StatusCode, b)
			}

			// A client stream whose client never ends the body.
			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequest("POST", p.url+"/greeter.v1.Greeter/LotsOfGreetings", pr)
			req.Header.Set("Content-Type", "application/connect+json")
			req.Header.Set("Connect-Timeout-Ms", "50")
			go pw.Write(envelope(0, []byte(`{"name":"slow"}`)))
			r, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(r.Body)
			r.Body.Close()
			fs := frames(t, b)
			var end endStream
			decodeJSON(t, fs[len(fs)-1].body, &end)
			if end.Error == nil || end.Error.Code != "deadline_exceeded" {
				t.Fatalf("stalled body: %s", b)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	const origin = "https://app.example"
	for _, p := range start(t, &testGreeter{}, webrpc.Config{AllowedOrigins: []string{origin}}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, _ := do(t, p, "OPTIONS", sayHello, "", nil, "Origin", origin,
				"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,connect-protocol-version,x-echo")
			h := rsp.Header
			if rsp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != origin ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Connect-Protocol-Version") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-echo") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "X-Grpc-Web") {
				t.Fatalf("preflight: %d %v", rsp.StatusCode, h)
			}
			rsp, _ = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"meta"}`), "Origin", origin, "X-Echo", "cors")
			h = rsp.Header
			exp := h.Get("Access-Control-Expose-Headers")
			if rsp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != origin ||
				!strings.Contains(exp, "Grpc-Status") || !strings.Contains(exp, "X-Echo") || !strings.Contains(exp, "Trailer-X-Trailer") {
				t.Fatalf("actual request: %d %v", rsp.StatusCode, h)
			}
			// Another origin gets no CORS headers at all.
			rsp, _ = do(t, p, "OPTIONS", sayHello, "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
			if rsp.Header.Get("Access-Control-Allow-Origin") != "" || rsp.StatusCode == 204 {
				t.Fatalf("other origin's preflight: %d %v", rsp.StatusCode, rsp.Header)
			}
			rsp, _ = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"x"}`), "Origin", "https://evil.example")
			if rsp.Header.Get("Access-Control-Allow-Origin") != "" || rsp.Header.Get("Access-Control-Expose-Headers") != "" {
				t.Fatalf("other origin's request: %v", rsp.Header)
			}
		})
	}
}

func TestHandlerPanic(t *testing.T) {
	var rec logtest.Recorder
	peers := start(t, &testGreeter{}, webrpc.Config{Log: rec.Logger(slog.LevelError)})
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"panic"}`))
			var ce connectError
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 500 || ce.Code != "internal" || !strings.Contains(ce.Message, "boom") {
				t.Fatalf("panic: %d %s", rsp.StatusCode, b)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"after"}`))
			if rsp.StatusCode != 200 {
				t.Fatalf("after the panic: %d %s", rsp.StatusCode, b)
			}
		})
	}
	logged := 0
	for _, r := range rec.Records(t) {
		if strings.Contains(fmt.Sprint(r["msg"]), "panicked") && r["panic"] == "boom" {
			logged++
		}
	}
	if logged != len(peers) {
		t.Fatalf("%d panics logged, want %d: %v", logged, len(peers), rec.Records(t))
	}
}

// TestCurl calls the handler as a user would from a shell.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed; apt-get install curl to run this test")
	}
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			version := "--http1.1"
			if p.h2 {
				version = "--http2-prior-knowledge"
			}
			run := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20", version, "-w", "\n%{http_code}"}, args...)...).Output()
				if err != nil {
					t.Fatalf("curl %v: %v", args, err)
				}
				return string(out)
			}
			// protojson varies its spacing, so the bodies are matched
			// loosely.
			if out := run("-H", "Content-Type: application/json", "-d", `{"name":"curl"}`, p.url+sayHello); !strings.Contains(out, `"Hello curl"}`) || !strings.HasSuffix(out, "\n200") {
				t.Fatalf("POST: %q", out)
			}
			if out := run(p.url + sayHello + "?encoding=json&message=" + url.QueryEscape(`{"name":"get"}`)); !strings.Contains(out, `"Hello get"}`) || !strings.HasSuffix(out, "\n200") {
				t.Fatalf("GET: %q", out)
			}
			out := run("-H", "Content-Type: application/json", "-d", `{"name":"details"}`, p.url+sayHello)
			if !strings.HasSuffix(out, "\n404") || !strings.Contains(out, `"code":"not_found"`) || !strings.Contains(out, `"debug":"why"`) {
				t.Fatalf("error: %q", out)
			}
		})
	}
}
