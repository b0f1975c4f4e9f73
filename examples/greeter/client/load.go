package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
)

// tally counts replies per answering instance and failures.
type tally struct {
	mu     sync.Mutex
	calls  int
	failed int
	by     map[string]int
	errs   map[string]int
}

func newTally() *tally { return &tally{by: map[string]int{}, errs: map[string]int{}} }

func (t *tally) add(instance string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if err != nil {
		t.failed++
		t.errs[err.Error()]++
		return
	}
	t.by[instance]++
}

// take returns the counts so far and starts afresh.
func (t *tally) take() (calls, failed int, by map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	calls, failed, by = t.calls, t.failed, t.by
	t.calls, t.failed, t.by = 0, 0, map[string]int{}
	return calls, failed, by
}

func formatBy(by map[string]int) string {
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, by[n])
	}
	return strings.Join(parts, " ")
}

// load calls SayHello from workers goroutines until d has passed or the
// process is told to stop, printing every interval how many calls each
// instance answered, then a summary. It returns the number of failed calls.
func load(greeter greeterpb.GreeterService, opts []client.CallOption, d time.Duration, workers int, interval time.Duration) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	period := newTally()
	total := newTally()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				callCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				rsp, err := greeter.SayHello(callCtx, &greeterpb.HelloRequest{Name: "load"}, opts...)
				cancel()
				instance := "?"
				if err == nil {
					if i := strings.LastIndex(rsp.Message, " from "); i >= 0 {
						instance = rsp.Message[i+len(" from "):]
					}
				}
				period.add(instance, err)
				total.add(instance, err)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			wg.Wait()
			done = true
		}
		calls, failed, by := period.take()
		fmt.Printf("load t=%4.1fs calls=%d failed=%d answered by: %s\n", time.Since(start).Seconds(), calls, failed, formatBy(by))
	}
	total.mu.Lock()
	defer total.mu.Unlock()
	fmt.Printf("load summary: %d calls, %d failed; answered by: %s\n", total.calls, total.failed, formatBy(total.by))
	for e, n := range total.errs {
		fmt.Fprintf(os.Stderr, "load error (%d×): %s\n", n, e)
	}
	return total.failed
}
