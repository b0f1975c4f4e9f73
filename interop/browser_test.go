//go:build unix

package interop_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/examples/greeter/handler"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// TestBrowser loads a page into headless Chromium whose script, served from
// another origin than the API, calls the greeter as a browser application
// would without a client library: Connect unary JSON with fetch, a Connect
// server stream whose envelopes it splits itself, Connect errors, gRPC-Web
// unary with its trailer frame and trailers-only error, and a server
// without CORS, which the browser must refuse. The script posts what it
// read back to the page's server, and the test checks the values. It runs
// over HTTP/1.1 in cleartext and over HTTP/2 with TLS, where the server's
// TLS handshakes show that the browser chose h2. CI installs chromium and
// sets MICROTEST_REQUIRE_CHROMIUM, so that there the test fails instead of
// skipping.
func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("MICROTEST_REQUIRE_CHROMIUM") != "" {
			t.Fatal("chromium is not installed")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	leakcheck.Check(t)
	t.Run("http1", func(t *testing.T) {
		r := runBrowser(t, chromium, false)
		checkBrowserReport(t, r, "http/1.1")
	})
	t.Run("h2-tls", func(t *testing.T) {
		r := runBrowser(t, chromium, true)
		checkBrowserReport(t, r, "h2")
	})
}

// browserReport is what the page's script posts to /result.
type browserReport struct {
	Fatal string // an uncaught error in the page

	Unary struct {
		Status      int
		ContentType string
		Body        map[string]any
		Exception   string
	}
	ServerStream struct {
		Status      int
		ContentType string
		Flags       []int
		Messages    []map[string]any
		End         map[string]any
		Exception   string
	}
	ErrorArgument connectErrorReport
	ErrorUnknown  connectErrorReport
	GRPCWeb       grpcWebReport
	GRPCWebError  grpcWebReport
	NoCORS        struct {
		Status    int
		Exception string
	}
	Page         string   // the page's nextHopProtocol
	APIProtocols []string // the API calls' nextHopProtocol
}

type connectErrorReport struct {
	Status    int
	Body      map[string]any
	Exception string
}

type grpcWebReport struct {
	Status        int
	ContentType   string
	HeaderStatus  string // grpc-status read from the headers
	HeaderMessage string
	Flags         []int
	Messages      []map[string]any
	Trailer       map[string]string // the trailer frame's fields
	Exception     string
}

// runBrowser starts the greeter with CORS for a page server's origin, the
// page server, and Chromium on the page, and returns the page's report.
func runBrowser(t *testing.T, chromium string, useTLS bool) browserReport {
	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, browserPage)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case results <- b:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	page := httptest.NewUnstartedServer(mux)
	var (
		apiOpts []server.Option
		flags   []string
		alpnMu  sync.Mutex
		alpn    []string // what the API server's TLS handshakes negotiated
	)
	if useTLS {
		leaf := testcert.NewCA(t).Issue(t, "browser")
		cert, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		// Chromium trusts this one key, instead of every certificate.
		spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		flags = append(flags, "--ignore-certificate-errors-spki-list="+base64.StdEncoding.EncodeToString(spki[:]))
		apiOpts = append(apiOpts, server.WithTLSConfig(&tls.Config{
			Certificates: []tls.Certificate{leaf.TLS},
			VerifyConnection: func(cs tls.ConnectionState) error {
				alpnMu.Lock()
				alpn = append(alpn, cs.NegotiatedProtocol)
				alpnMu.Unlock()
				return nil
			},
		}))
		page.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
		page.EnableHTTP2 = true
		page.StartTLS()
	} else {
		page.Start()
	}
	defer page.Close()

	api := startBrowserAPI(t, append(apiOpts, server.WithCORS(page.URL))...)
	// The same greeter, but with no CORS: the browser must not let the
	// page read its answer.
	closed := startBrowserAPI(t, apiOpts...)
	scheme := "http://"
	if useTLS {
		scheme = "https://"
	}
	pageURL := page.URL + "/?" + url.Values{"api": {scheme + api.Address()}, "nocors": {scheme + closed.Address()}}.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.Command(chromium, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-proxy-server",
		// Resolve no host name at all: the page names 127.0.0.1 only.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
	}, append(flags, pageURL)...)...)
	cmd.Stderr = &stderr
	// What Chromium keeps beside the profile (its crash database, the
	// NSS database) goes to the test's folder too, not the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home+"/config", "XDG_CACHE_HOME="+home+"/cache")
	// Its own process group, so that the browser's helper processes end
	// with it; WaitDelay bounds Wait should one still hold stderr open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return <-exited
	}

	var raw []byte
	select {
	case raw = <-results:
		_ = stop()
	case err := <-exited:
		t.Fatalf("chromium exited before the page reported: %v\n%s", err, tail(stderr.Bytes()))
	case <-ctx.Done():
		err := stop()
		t.Fatalf("no report from the page within the timeout (chromium: %v)\n%s", err, tail(stderr.Bytes()))
	}
	t.Logf("the page reported after %v", time.Since(start).Round(time.Millisecond))

	var r browserReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report %s: %v", raw, err)
	}
	if r.Fatal != "" {
		t.Fatalf("the page failed: %s\nchromium:\n%s", r.Fatal, tail(stderr.Bytes()))
	}
	t.Logf("report: %s", raw)
	if useTLS {
		alpnMu.Lock()
		defer alpnMu.Unlock()
		if len(alpn) == 0 {
			t.Fatal("no TLS handshake with the API server")
		}
		for _, p := range alpn {
			if p != "h2" {
				t.Errorf("a browser connection to the API negotiated %q, want h2 (all: %q)", p, alpn)
			}
		}
	}
	return r
}

func startBrowserAPI(t *testing.T, opts ...server.Option) server.Server {
	srv := server.NewServer(append(opts, server.WithAddress("127.0.0.1:0"))...)
	if err := greeterpb.RegisterGreeterHandler(srv, handler.Greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// tail returns the end of Chromium's stderr, for a failure message.
func tail(b []byte) []byte {
	if len(b) > 4096 {
		return b[len(b)-4096:]
	}
	return b
}

func checkBrowserReport(t *testing.T, r browserReport, proto string) {
	t.Helper()
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", what, got, want)
		}
	}
	u := r.Unary
	check("unary exception", u.Exception, "")
	check("unary status", u.Status, 200)
	check("unary content type", u.ContentType, "application/json")
	check("unary reply", u.Body, map[string]any{"message": "Hello Browser"})

	s := r.ServerStream
	check("stream exception", s.Exception, "")
	check("stream status", s.Status, 200)
	check("stream content type", s.ContentType, "application/connect+json")
	check("stream envelope flags", s.Flags, []int{0, 0, 0, 2})
	check("stream messages", s.Messages, []map[string]any{
		{"message": "1: Hello Stream"}, {"message": "2: Bonjour Stream"}, {"message": "3: Hallo Stream"},
	})
	if s.End == nil || s.End["error"] != nil {
		t.Errorf("stream end message: %#v, want one without an error", s.End)
	}

	check("invalid argument", r.ErrorArgument, connectErrorReport{Status: 400,
		Body: map[string]any{"code": "invalid_argument", "message": "name is required"}})
	e := r.ErrorUnknown
	check("unknown method exception", e.Exception, "")
	check("unknown method status", e.Status, 404)
	check("unknown method code", e.Body["code"], "unimplemented")

	check("grpc-web", r.GRPCWeb, grpcWebReport{
		Status: 200, ContentType: "application/grpc-web+json",
		Flags:    []int{0, 0x80},
		Messages: []map[string]any{{"message": "Hello Web"}},
		Trailer:  map[string]string{"grpc-status": "0"},
	})
	// Trailers-only: the status in headers, which CORS must expose.
	check("grpc-web error", r.GRPCWebError, grpcWebReport{
		Status: 200, ContentType: "application/grpc-web+json",
		HeaderStatus: "3", HeaderMessage: "name is required",
		Flags: []int{}, Messages: []map[string]any{},
	})

	check("no CORS status", r.NoCORS.Status, 0)
	check("no CORS exception", r.NoCORS.Exception, "TypeError: Failed to fetch")

	check("page protocol", r.Page, proto)
}

// browserPage calls the API named by its "api" query parameter as a web
// application would, with no library and no build step, and posts what it
// read to /result.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>greeter in a browser</title>
<script>
window.addEventListener("error", (e) => {
  fetch("/result", {method: "POST", body: JSON.stringify({Fatal: String(e.message)})});
});
</script>
<script>
(async () => {
  const params = new URLSearchParams(location.search);
  const api = params.get("api");
  const enc = new TextEncoder(), dec = new TextDecoder();
  const report = {};

  // One envelope: a flag byte, a 4-byte big-endian length, the message.
  function envelope(flags, msg) {
    const data = enc.encode(JSON.stringify(msg));
    const b = new Uint8Array(5 + data.length);
    b[0] = flags;
    new DataView(b.buffer).setUint32(1, data.length);
    b.set(data, 5);
    return b;
  }
  function splitEnvelopes(b) {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength), out = [];
    for (let i = 0; i < b.length; ) {
      if (b.length - i < 5) throw new Error("a truncated envelope header at byte " + i);
      const n = v.getUint32(i + 1);
      if (b.length - i - 5 < n) throw new Error("a truncated envelope at byte " + i);
      out.push({flags: b[i], data: b.subarray(i + 5, i + 5 + n)});
      i += 5 + n;
    }
    return out;
  }
  // readAll reads a body chunk by chunk, as it arrives.
  async function readAll(body) {
    const reader = body.getReader(), chunks = [];
    let n = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
    const b = new Uint8Array(n);
    let off = 0;
    for (const c of chunks) { b.set(c, off); off += c.length; }
    return b;
  }
  async function step(name, f) {
    try { report[name] = await f(); } catch (e) { report[name] = {Exception: String(e)}; }
  }
  const connectJSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"};
  async function connectError(rsp) {
    return {Status: rsp.status, Body: await rsp.json()};
  }
  async function grpcWeb(rsp) {
    const r = {Status: rsp.status, ContentType: rsp.headers.get("Content-Type"),
      HeaderStatus: rsp.headers.get("Grpc-Status") || "", HeaderMessage: rsp.headers.get("Grpc-Message") || "",
      Flags: [], Messages: []};
    for (const e of splitEnvelopes(new Uint8Array(await rsp.arrayBuffer()))) {
      r.Flags.push(e.flags);
      if (e.flags & 0x80) {
        r.Trailer = {};
        for (const line of dec.decode(e.data).split("\r\n")) {
          if (line === "") continue;
          const i = line.indexOf(":");
          r.Trailer[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
      } else {
        r.Messages.push(JSON.parse(dec.decode(e.data)));
      }
    }
    return r;
  }

  await step("Unary", async () => {
    const rsp = await fetch(api + "/greeter.v1.Greeter/SayHello",
      {method: "POST", headers: connectJSON, body: JSON.stringify({name: "Browser"})});
    return {Status: rsp.status, ContentType: rsp.headers.get("Content-Type"), Body: await rsp.json()};
  });
  await step("ServerStream", async () => {
    const rsp = await fetch(api + "/greeter.v1.Greeter/LotsOfReplies", {method: "POST",
      headers: {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"},
      body: envelope(0, {name: "Stream"})});
    const r = {Status: rsp.status, ContentType: rsp.headers.get("Content-Type"), Flags: [], Messages: []};
    for (const e of splitEnvelopes(await readAll(rsp.body))) {
      r.Flags.push(e.flags);
      const msg = JSON.parse(dec.decode(e.data));
      if (e.flags & 0x02) r.End = msg; else r.Messages.push(msg);
    }
    return r;
  });
  await step("ErrorArgument", async () => connectError(await fetch(api + "/greeter.v1.Greeter/SayHello",
    {method: "POST", headers: connectJSON, body: "{}"})));
  await step("ErrorUnknown", async () => connectError(await fetch(api + "/greeter.v1.Greeter/NoSuchMethod",
    {method: "POST", headers: connectJSON, body: "{}"})));
  const grpcWebJSON = {"Content-Type": "application/grpc-web+json", "X-Grpc-Web": "1"};
  await step("GRPCWeb", async () => grpcWeb(await fetch(api + "/greeter.v1.Greeter/SayHello",
    {method: "POST", headers: grpcWebJSON, body: envelope(0, {name: "Web"})})));
  await step("GRPCWebError", async () => grpcWeb(await fetch(api + "/greeter.v1.Greeter/SayHello",
    {method: "POST", headers: grpcWebJSON, body: envelope(0, {})})));
  await step("NoCORS", async () => {
    const rsp = await fetch(params.get("nocors") + "/greeter.v1.Greeter/SayHello",
      {method: "POST", headers: connectJSON, body: JSON.stringify({name: "Nobody"})});
    return {Status: rsp.status};
  });

  report.Page = performance.getEntriesByType("navigation")[0].nextHopProtocol;
  await fetch("/result", {method: "POST", body: JSON.stringify(report)});
})().catch((e) => fetch("/result", {method: "POST", body: JSON.stringify({Fatal: String(e)})}));
</script>
`
