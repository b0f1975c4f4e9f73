// Command demo shows the example Greeter found and balanced with no
// configuration. Inside a private network namespace (multicast never leaves
// the machine) it starts three auditors subscribed as one queue group,
// three greeter servers and a client that knows only the service's name;
// the client's LotsOfGreetings call makes a server publish an event, which
// one auditor handles. Then, under steady load, it starts a fourth server,
// stops one gracefully, kills another with SIGKILL, and reports how the
// calls were spread and that none failed.
//
// The programs are built first, outside the namespace, where the module
// proxy can be reached; inside it there is only loopback.
//
//	go run ./examples/greeter/demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/internal/demo"
)

const (
	// insideEnv is set to 1 in the copy of the demo that runs inside the
	// network namespace.
	insideEnv = "MICROTEST_DEMO_NETNS"
	// binEnv names the folder holding the programs built for that copy.
	binEnv = "MICROTEST_DEMO_BIN"
)

func main() {
	step := flag.Duration("step", 3*time.Second, "time between the demo's events")
	flag.Parse()
	if os.Getenv(insideEnv) != "1" {
		// Build outside the namespace, where the module proxy can be
		// reached; inside it there is only loopback.
		os.Exit(demo.Reexec("demo", binEnv, []string{insideEnv + "=1"}, build))
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		fatal(errors.New(binEnv + " is not set: start the demo without " + insideEnv))
	}
	if err := setupLoopback(); err != nil {
		fatal(err)
	}
	if err := run(*step, bin); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

func setupLoopback() error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// start runs bin with args, found by mDNS, its output echoed after name.
func start(name string, bin string, args ...string) (*demo.Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MICRO_REGISTRY=mdns")
	return demo.Start(name, fmt.Sprintf("%-9s", name), cmd)
}

// printed matches a line containing s.
func printed(s string) *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(s)) }

// build builds the greeter server, client and auditor into dir, each named
// after its folder.
func build(dir string) error {
	fmt.Println("demo: building the greeter server, client and auditor")
	pkgs := []string{"./examples/greeter/server", "./examples/greeter/client", "./examples/greeter/auditor"}
	if out, err := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	return nil
}

func run(step time.Duration, bin string) error {
	fmt.Println("demo: in a private network namespace (only lo, multicast routed to it)")
	serverBin, clientBin, auditorBin := filepath.Join(bin, "server"), filepath.Join(bin, "client"), filepath.Join(bin, "auditor")
	var servers, auditors []*demo.Proc
	defer func() {
		for _, s := range append(servers, auditors...) {
			s.Cmd.Process.Kill()
		}
	}()
	fmt.Println("demo: starting auditor-1 .. auditor-3, one queue group subscribed to greeter.greeted")
	for i := 1; i <= 3; i++ {
		name := "auditor-" + strconv.Itoa(i)
		p, err := start(name, auditorBin, "-instance", name)
		if err != nil {
			return err
		}
		auditors = append(auditors, p)
		if _, err := p.WaitFor(printed("subscribed to"), 10*time.Second); err != nil {
			return err
		}
	}
	startServer := func(i int) (*demo.Proc, error) {
		name := "greeter-" + strconv.Itoa(i)
		p, err := start(name, serverBin, "-address", "127.0.0.1:0", "-instance", name, "-events")
		if err != nil {
			return nil, err
		}
		servers = append(servers, p)
		_, err = p.WaitFor(printed("serving on"), 10*time.Second)
		return p, err
	}

	fmt.Println("demo: starting greeter-1 .. greeter-3; the client knows only the name \"greeter\"")
	for i := 1; i <= 3; i++ {
		if _, err := startServer(i); err != nil {
			return err
		}
	}
	calls, err := start("client", clientBin, "-name", "World")
	if err != nil {
		return err
	}
	<-calls.Done()
	if calls.Cmd.ProcessState.ExitCode() != 0 {
		return errors.New("the four calls failed")
	}

	fmt.Printf("demo: steady load by name; an event every %v\n", step)
	total := 4*step + step/2
	loader, err := start("load", clientBin, "-load", total.String(), "-workers", "4", "-interval", (step / 2).String())
	if err != nil {
		return err
	}
	time.Sleep(step)
	fmt.Println("demo: starting greeter-4")
	if _, err := startServer(4); err != nil {
		return err
	}
	time.Sleep(step)
	fmt.Println("demo: stopping greeter-1 gracefully (SIGTERM)")
	if err := servers[0].Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		return err
	}
	time.Sleep(step)
	fmt.Println("demo: killing greeter-2 (SIGKILL)")
	servers[1].Signal(syscall.SIGKILL, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), total+30*time.Second)
	defer cancel()
	select {
	case <-loader.Done():
	case <-ctx.Done():
		return errors.New("the load client did not finish")
	}
	for _, s := range append(servers[2:], auditors...) {
		s.Signal(syscall.SIGTERM, 15*time.Second)
	}
	var handled []string
	for _, a := range auditors {
		for _, l := range a.Lines() {
			if strings.Contains(l, "handled event") {
				handled = append(handled, l)
			}
		}
	}
	fmt.Printf("demo: the LotsOfGreetings call published one event; handled %d time(s): %s\n", len(handled), strings.Join(handled, "; "))
	if len(handled) != 1 {
		return fmt.Errorf("the event was handled %d times, want exactly once", len(handled))
	}
	return summarize(loader.Lines())
}

var (
	periodLine  = regexp.MustCompile(`^load t=\s*([0-9.]+)s calls=(\d+) failed=(\d+) answered by: ?(.*)$`)
	summaryLine = regexp.MustCompile(`^load summary: (\d+) calls, (\d+) failed; answered by: ?(.*)$`)
)

// summarize checks what the load client saw and says it in a few lines.
func summarize(lines []string) error {
	var calls, failed int
	var by string
	seen4 := false
	// Who answered in each interval; the last one may be a short tail, so
	// the end is judged on the last two.
	var periods []map[string]bool
	for _, l := range lines {
		if m := periodLine.FindStringSubmatch(l); m != nil {
			with := map[string]bool{}
			for _, kv := range strings.Fields(m[4]) {
				name, _, _ := strings.Cut(kv, "=")
				with[name] = true
				if name == "greeter-4" {
					seen4 = true
				}
			}
			periods = append(periods, with)
		}
		if m := summaryLine.FindStringSubmatch(l); m != nil {
			calls, _ = strconv.Atoi(m[1])
			failed, _ = strconv.Atoi(m[2])
			by = m[3]
		}
	}
	lastWith := map[string]bool{}
	for _, p := range periods[max(len(periods)-2, 0):] {
		for n := range p {
			lastWith[n] = true
		}
	}
	fmt.Println("demo: summary")
	fmt.Printf("  %d calls by name, %d failed; answered by: %s\n", calls, failed, by)
	fmt.Printf("  greeter-4 picked up after it started: %v\n", seen4)
	fmt.Printf("  at the end only the live ones answer: %v\n", !lastWith["greeter-1"] && !lastWith["greeter-2"] && lastWith["greeter-3"] && lastWith["greeter-4"])
	if calls == 0 || failed != 0 || !seen4 {
		return fmt.Errorf("the demo did not go as it should: %d calls, %d failed, greeter-4 seen %v", calls, failed, seen4)
	}
	return nil
}
