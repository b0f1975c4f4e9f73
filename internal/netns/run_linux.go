package netns

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// RunInNamespace runs the tests of m inside a private network namespace
// and exits with their status; call it from TestMain. It never returns.
//
// Outside a namespace it re-executes the test binary, with the same
// arguments and environment, under `unshare -rn`. The re-executed binary
// brings its loopback up with multicast on and a route for 224.0.0.0/4,
// checks that it really is in a namespace of its own holding nothing but
// that loopback, and runs the tests. Helper processes started with Start or
// Host.Start, and the processes holding NewLAN's namespaces, also pass
// through here and are told apart by their environment.
func RunInNamespace(m *testing.M) {
	switch os.Getenv(envInside) {
	case stateReady:
		if os.Getenv(envHold) == "1" {
			// A NewLAN namespace holder: live until the parent closes stdin.
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}
		if err := checkPrivate(false); err != nil {
			refuse(err)
		}
		os.Exit(m.Run())
	case stateNew:
		if err := setUp(); err != nil {
			unavailable(fmt.Errorf("setting up the namespace's loopback: %w", err))
		}
		if err := checkPrivate(true); err != nil {
			refuse(err)
		}
		os.Setenv(envInside, stateReady)
		os.Exit(m.Run())
	}
	os.Exit(reexec())
}

// Environment shared by the processes of one test run.
const (
	// envInside is stateNew in the process unshare starts, and stateReady
	// once it has set up its namespace (inherited by its helpers).
	envInside  = "MICROTEST_NETNS"
	stateNew   = "1"
	stateReady = "ready"
	// envOuter holds the network namespace RunInNamespace started from; a
	// child that finds itself still there refuses to run.
	envOuter = "MICROTEST_NETNS_OUTER"
	// envHold marks a process that only holds a NewLAN namespace open.
	envHold = "MICROTEST_NETNS_HOLD"
	// envHelper marks a helper process started by Start or Host.Start.
	envHelper = "MICROTEST_NETNS_HELPER"
	// EnvRequire, set to 1, turns "cannot create a namespace" from a skip
	// into a failure.
	EnvRequire = "MICROTEST_REQUIRE_NETNS"
)

// reexec runs the test binary again in a new user and network namespace
// and returns the exit status to use.
func reexec() int {
	self, err := os.Executable()
	if err != nil {
		unavailable(fmt.Errorf("finding the test binary: %w", err))
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		unavailable(fmt.Errorf("unshare (util-linux) is not installed: %w", err))
	}
	// Probe first, so that a namespace we may not create is told apart from
	// tests that fail.
	probe := exec.Command(unshare, "-rn", "true")
	var stderr bytes.Buffer
	probe.Stderr = &stderr
	if err := probe.Run(); err != nil {
		unavailable(fmt.Errorf("unshare -rn: %v: %s", err, strings.TrimSpace(stderr.String())))
	}
	outer, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		unavailable(fmt.Errorf("reading our network namespace: %w", err))
	}

	cmd := exec.Command(unshare, append([]string{"-rn", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"="+stateNew, envOuter+"="+outer)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// go test's timeout sends SIGQUIT to this process: pass it and the
	// usual stop signals on, so the child dumps its own goroutines.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		unavailable(fmt.Errorf("starting %s: %w", unshare, err))
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "netns: test process killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "netns: %v\n", err)
	return 1
}

// setUp brings the namespace's loopback up with multicast on and routes
// IPv4 multicast to it.
func setUp() error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// checkPrivate makes sure the process is not in the namespace
// RunInNamespace started from and, for a fresh namespace, that it holds
// nothing but a loopback: the last guard between a test and a real network.
func checkPrivate(fresh bool) error {
	outer := os.Getenv(envOuter)
	self, err := os.Readlink("/proc/self/ns/net")
	switch {
	case err != nil:
		return fmt.Errorf("reading our network namespace: %w", err)
	case outer == "":
		return fmt.Errorf("%s is set but %s is not: not started by RunInNamespace", envInside, envOuter)
	case self == outer:
		return fmt.Errorf("still in the network namespace we started from (%s)", self)
	}
	if !fresh {
		return nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback == 0 {
			return fmt.Errorf("the new namespace has interface %s besides the loopback", ifi.Name)
		}
	}
	return nil
}

// unavailable reports that no namespace can be had: a failure when
// MICROTEST_REQUIRE_NETNS=1, otherwise a skip of every test.
func unavailable(err error) {
	if os.Getenv(EnvRequire) == "1" {
		fmt.Fprintf(os.Stderr, "FAIL: cannot create a private network namespace (%s=1): %v\n", EnvRequire, err)
		os.Exit(1)
	}
	fmt.Printf("skipping: cannot create a private network namespace: %v\n"+
		"(these tests send multicast and run only in a namespace of their own; set %s=1 to make this a failure)\n",
		err, EnvRequire)
	os.Exit(0)
}

// refuse stops a test binary that is not where it should be; never a skip.
func refuse(err error) {
	fmt.Fprintf(os.Stderr, "FAIL: netns: refusing to run tests that send multicast: %v\n", err)
	os.Exit(1)
}
