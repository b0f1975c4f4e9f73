package service_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// TestCORS: a service given WithCORS answers a browser's preflight from
// that origin and its Connect call over HTTP/1.1; another origin gets no
// CORS headers. WithCORS after the server was made is refused at Start.
func TestCORS(t *testing.T) {
	leakcheck.Check(t)
	const allowed = "https://app.example"
	svc := startGreeter(t, service.WithRegistry(memory.NewRegistry()), service.WithCORS(allowed))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	do := func(method, origin string) (*http.Response, string) {
		t.Helper()
		body := `{"name":"CORS"}`
		if method == http.MethodOptions {
			body = ""
		}
		req, err := http.NewRequest(method, "http://"+svc.Server().Address()+"/greeter.v1.Greeter/SayHello", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		rsp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		return rsp, string(b)
	}
	if rsp, _ := do(http.MethodOptions, allowed); rsp.StatusCode/100 != 2 || rsp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("preflight from %s: %s %v", allowed, rsp.Status, rsp.Header)
	}
	if rsp, b := do(http.MethodPost, allowed); rsp.StatusCode != 200 || b != `{"message":"anonymous"}` || rsp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("call from %s: %s %q %v", allowed, rsp.Status, b, rsp.Header)
	}
	if rsp, _ := do(http.MethodPost, "https://other.example"); rsp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a call from another origin got CORS headers: %v", rsp.Header)
	}

	late := service.NewService(service.WithName("late"), service.WithAddress("127.0.0.1:0"),
		service.WithSignal(false), service.WithRegistry(memory.NewRegistry()))
	late.Server()
	late.Init(service.WithCORS(allowed))
	if err := late.Start(); err == nil || !strings.Contains(err.Error(), "WithCORS") {
		late.Stop()
		t.Fatalf("Start after a late WithCORS: %v, want it refused", err)
	}
	late.Stop()
}
