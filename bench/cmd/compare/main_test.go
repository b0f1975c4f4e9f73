package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"google.golang.org/protobuf/proto"
)

func TestEnvelope(t *testing.T) {
	b := envelope(nil, &benchv1.Msg{Payload: []byte("hi")})
	want := []byte{0, 0, 0, 0, 4, 0x0a, 2, 'h', 'i'}
	if !bytes.Equal(b, want) {
		t.Fatalf("envelope = %x, want %x", b, want)
	}
	b = workloadsByName["bidi"].body(config{size: 16, bidiBatch: 3})
	if len(b) != 3*(5+18) {
		t.Fatalf("bidi body is %d bytes, want 3 envelopes of 23", len(b))
	}
	var c benchv1.Count
	if err := proto.Unmarshal(workloadsByName["serverstream"].body(config{size: 16, streamN: 7})[5:], &c); err != nil || c.N != 7 || c.PayloadSize != 16 {
		t.Fatalf("server-stream body decodes to %v, %v", &c, err)
	}
}

// TestMeasure runs echo-server briefly under each load generator available
// and checks that the stats lines turn into a rate and allocation counts.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs echo-server")
	}
	server := filepath.Join(t.TempDir(), "echo-server")
	build := exec.Command("go", "build", "-o", server, "github.com/protoc-gen-micro/micro/bench/cmd/echo-server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gens := []string{"go"}
	if _, err := exec.LookPath("h2load"); err == nil {
		gens = append(gens, "h2load")
	}
	for _, gen := range gens {
		for _, w := range []string{"unary", "bidi", "serverstream"} {
			t.Run(gen+"/"+w, func(t *testing.T) {
				c := config{
					server: server, loadgen: gen, warmup: 200 * time.Millisecond, duration: 300 * time.Millisecond,
					conns: 2, streams: 2, size: 16, bidiBatch: 10, streamN: 10,
				}
				r, err := measure(c, "micro", workloadsByName[w])
				if err != nil {
					t.Fatal(err)
				}
				if r.rate <= 0 || r.allocs <= 0 || r.loadNotes != "" {
					t.Fatalf("rate %v, allocs %v, notes %q", r.rate, r.allocs, r.loadNotes)
				}
				var out strings.Builder
				printTable(&out, c, []result{r})
				if !strings.Contains(out.String(), "micro") {
					t.Fatalf("table lacks the result:\n%s", out.String())
				}
			})
		}
	}
}

func TestCPUSeconds(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if s := cpuSeconds(os.Getpid()); !(s >= 0) {
		t.Fatalf("cpuSeconds(self) = %v", s)
	}
}
