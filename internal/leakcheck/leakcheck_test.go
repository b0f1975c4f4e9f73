package leakcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder captures what Check does with its testing.TB.
type recorder struct {
	testing.TB
	cleanups []func()
	failure  string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Cleanup(f func())               { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, a ...any) { r.failure = fmt.Sprintf(format, a...) }

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheck(t *testing.T) {
	defer func(d time.Duration) { wait = d }(wait)
	wait = 100 * time.Millisecond

	// A goroutine that ends during the wait is not a leak.
	rec := &recorder{TB: t}
	Check(rec)
	go time.Sleep(20 * time.Millisecond)
	rec.end()
	if rec.failure != "" {
		t.Fatalf("goroutine that ended was reported: %s", rec.failure)
	}

	// One still running is.
	rec = &recorder{TB: t}
	Check(rec)
	release := make(chan struct{})
	go func() { <-release }()
	rec.end()
	close(release)
	if !strings.Contains(rec.failure, "1 goroutine(s) still running") || !strings.Contains(rec.failure, "leakcheck.TestCheck") {
		t.Fatalf("leak not reported properly: %q", rec.failure)
	}
}
