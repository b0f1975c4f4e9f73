// Package leakcheck fails a test that leaves goroutines running.
//
// It compares the goroutines alive when the test calls Check with those
// alive when the test's cleanups have run, waiting a bounded time for
// goroutines that are still winding down. It is for tests that do not run
// in parallel with others (t.Parallel), whose goroutines it would blame on
// the checked test. It is not a general-purpose leak detector for callers
// outside this module.
package leakcheck

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// wait bounds how long Check waits for goroutines to end; a variable so the
// package's own test need not wait that long.
var wait = 5 * time.Second

// ignored are stack fragments of goroutines that the runtime or standard
// library start once and keep for the life of the process.
var ignored = []string{
	"os/signal.signal_recv", // started by the first signal.Notify
	"os/signal.loop",
	"testing.tRunner", // test goroutines themselves, e.g. subtests
}

// Check records the goroutines alive now and, when the test ends, fails it
// if new ones are still alive after a bounded wait. Call it first in the
// test so that its cleanup runs after the test's other cleanups.
func Check(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		for {
			leaked := leakedSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutine(s) still running after %v:\n\n%s",
					len(leaked), wait, strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// leakedSince returns the stacks of goroutines that are alive now but were
// not in before, less the ignored ones.
func leakedSince(before map[string]string) []string {
	var leaked []string
	for id, stack := range goroutines() {
		if _, ok := before[id]; ok || isIgnored(stack) {
			continue
		}
		leaked = append(leaked, stack)
	}
	return leaked
}

func isIgnored(stack string) bool {
	for _, s := range ignored {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

// goroutines returns every goroutine's stack keyed by its ID.
func goroutines() map[string]string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		// Each block starts "goroutine 7 [chan receive]:".
		header, _, _ := bytes.Cut(g, []byte("\n"))
		fields := bytes.Fields(header)
		if len(fields) < 2 || string(fields[0]) != "goroutine" {
			continue
		}
		out[string(fields[1])] = string(g)
	}
	return out
}
