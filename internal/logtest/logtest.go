// Package logtest reads back what a test made log/slog write, as records.
package logtest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Recorder collects the lines of a slog JSON handler.
type Recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a logger writing to r at level and above.
func (r *Recorder) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(r, &slog.HandlerOptions{Level: level}))
}

// Write implements io.Writer for the handler.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// Records returns every line written so far, decoded; it fails the test on
// a line that is not JSON.
func (r *Recorder) Records(t testing.TB) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}
