//go:build linux

// Command demo runs the example Greeter across hosts: a data centre with
// etcd and NATS (JetStream), greeter servers on two hosts, and a client and
// a subscriber on a third, each host a network namespace of its own joined
// to the data centre by a routed point-to-point link. There is no bridge
// and the data centre forwards no multicast, so the client can only find
// the greeter through etcd. Under steady load it stops the subscriber,
// publishes an event while it is down and starts it again, then restarts
// etcd, and reports that no call failed and the event was delivered.
//
// The programs are built first, where the module proxy can be reached;
// then the demo runs itself again under `unshare -rn` (a new user and
// network namespace, no root needed) and builds the hosts inside it.
//
//	cd examples/cluster && go run ./demo
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/internal/demo"
)

const (
	// insideEnv is set to 1 in the copy of the demo that runs in the new
	// namespace; binEnv names the folder holding the built program.
	insideEnv = "MICROTEST_CLUSTER_NETNS"
	binEnv    = "MICROTEST_CLUSTER_BIN"

	// dcAddr is the data centre's address, on its loopback; host i is
	// 10.77.i.2 with the data centre at 10.77.i.1 on the other end.
	dcAddr = "10.77.0.1"
)

func main() {
	step := flag.Duration("step", 2*time.Second, "load between the demo's events")
	flag.Parse()
	if os.Getenv(insideEnv) != "1" {
		os.Exit(demo.Reexec("demo-cluster", binEnv, []string{insideEnv + "=1"}, build))
	}
	d := &cluster{bin: filepath.Join(os.Getenv(binEnv), "cluster"), step: *step}
	t := time.Now()
	err := d.run()
	d.stopAll()
	fmt.Print(d.summary.String())
	fmt.Printf("demo-cluster: ran for %.1fs after the build; every process and namespace stopped\n", time.Since(t).Seconds())
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-cluster:", err)
		os.Exit(1)
	}
}

// build builds the cluster program into dir.
func build(dir string) error {
	fmt.Println("demo-cluster: building examples/cluster (etcd, nats-server, greeter, client, subscriber in one program)")
	t := time.Now()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "cluster"), "github.com/protoc-gen-micro/micro/examples/cluster")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	fmt.Printf("demo-cluster: built in %.1fs\n", time.Since(t).Seconds())
	return nil
}

// host is a network namespace, kept alive by a holder process (cat, which
// lives until its standard input is closed); commands run in it through
// nsenter, as internal/netns does for tests.
type host struct {
	name   string
	holder *exec.Cmd
	stdin  io.WriteCloser
}

func newHost(name string) (*host, error) {
	cmd := exec.Command("cat")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return &host{name: name, holder: cmd, stdin: stdin}, nil
}

func (h *host) command(name string, args ...string) *exec.Cmd {
	ns := fmt.Sprintf("--net=/proc/%d/ns/net", h.holder.Process.Pid)
	return exec.Command("nsenter", append([]string{ns, "--", name}, args...)...)
}

// run runs each command line (split on spaces) in the namespace.
func (h *host) run(lines ...string) error {
	for _, line := range lines {
		f := strings.Fields(line)
		if out, err := h.command(f[0], f[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %s: %v: %s", h.name, line, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// cluster is the demo's run inside the namespace.
type cluster struct {
	bin   string
	step  time.Duration
	hosts []*host
	procs []*demo.Proc

	summary strings.Builder // printed once every process has stopped
}

// setUp builds the data centre and three hosts, each joined to it by a
// veth pair with a /24 of its own, routed by the data centre. A host sees
// the data centre's address and, through it, the other hosts' by unicast
// only: there is no bridge, and multicast forwarding stays off.
func (d *cluster) setUp() (dc *host, hosts []*host, err error) {
	if dc, err = newHost("dc"); err != nil {
		return nil, nil, err
	}
	d.hosts = append(d.hosts, dc)
	if err := dc.run("ip link set lo up", "ip addr add "+dcAddr+"/32 dev lo"); err != nil {
		return nil, nil, err
	}
	if out, err := dc.command("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("dc: turning IPv4 forwarding on: %v: %s", err, out)
	}
	for i := 1; i <= 3; i++ {
		h, err := newHost(fmt.Sprintf("host%d", i))
		if err != nil {
			return nil, nil, err
		}
		d.hosts = append(d.hosts, h)
		if err := dc.run(
			fmt.Sprintf("ip link add h%d type veth peer name eth0 netns %d", i, h.holder.Process.Pid),
			fmt.Sprintf("ip addr add 10.77.%d.1/24 dev h%d", i, i),
			fmt.Sprintf("ip link set h%d up", i),
		); err != nil {
			return nil, nil, err
		}
		if err := h.run("ip link set lo up", "ip link set eth0 up",
			fmt.Sprintf("ip addr add 10.77.%d.2/24 dev eth0", i),
			fmt.Sprintf("ip route add default via 10.77.%d.1", i),
		); err != nil {
			return nil, nil, err
		}
		hosts = append(hosts, h)
	}
	return dc, hosts, nil
}

// start runs the cluster program's part with args in h.
func (d *cluster) start(h *host, name string, args ...string) (*demo.Proc, error) {
	cmd := h.command(d.bin, args...)
	cmd.Env = append(os.Environ(),
		"MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS="+dcAddr+":2379",
		"MICRO_BROKER=nats", "MICRO_BROKER_ADDRESS=nats://"+dcAddr+":4222")
	// Should the demo die, nothing it started outlives it (nsenter
	// executes the part in its place, keeping this).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := demo.Start(name, fmt.Sprintf("%-6s %-10s", h.name, name), cmd)
	if err != nil {
		return nil, err
	}
	d.procs = append(d.procs, p)
	return p, nil
}

// micro runs the micro command, with the etcd plug-in, on h: it must list
// both greeter nodes and call one by name.
func (d *cluster) micro(h *host) error {
	run := func(args ...string) (string, error) {
		cmd := h.command(d.bin, append([]string{"micro"}, args...)...)
		cmd.Env = append(os.Environ(), "MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS="+dcAddr+":2379")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fmt.Printf("  %-6s %-10s | %s\n", h.name, "micro", line)
		}
		if err != nil {
			return "", fmt.Errorf("micro %s: %w", strings.Join(args, " "), err)
		}
		return string(out), nil
	}
	fmt.Println("demo-cluster: micro on host3, through etcd: services, then a call by name")
	out, err := run("services", "greeter", "--timeout", "10s")
	if err != nil {
		return err
	}
	if n := strings.Count(out, "\ngreeter "); n != 2 {
		return fmt.Errorf("micro services listed %d greeter nodes, want 2", n)
	}
	out, err = run("call", "greeter", "SayHello", `{"name":"micro"}`, "--timeout", "10s")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Hello micro from greeter-") {
		return fmt.Errorf("micro call answered %q", out)
	}
	return nil
}

// stopAll stops every process still running, by PID, the last started
// first (the data centre last), then the namespaces' holders.
func (d *cluster) stopAll() {
	for _, p := range slices.Backward(d.procs) {
		select {
		case <-p.Done():
		default:
			p.Signal(syscall.SIGTERM, 15*time.Second)
		}
	}
	for _, h := range d.hosts {
		h.stdin.Close()
		h.holder.Wait()
	}
}

var (
	reDCReady    = regexp.MustCompile(`^dc: nats \(JetStream\) serving`)
	reServing    = regexp.MustCompile(`serving on (\S+), registered`)
	reSubscribed = regexp.MustCompile(`subscribed to`)
	reRestarted  = regexp.MustCompile(`^dc: etcd serving again .*, ([0-9.]+)s after stopping began`)
	reSummary    = regexp.MustCompile(`^client summary: calls=(\d+) failed=(\d+) answered by: ?(.*)$`)
)

func handled(text string) *regexp.Regexp {
	return regexp.MustCompile(`handled event \S+: "` + regexp.QuoteMeta(text) + `"`)
}

func count(p *demo.Proc, tag string) (calls, failed int, err error) {
	if err := p.Send("count " + tag); err != nil {
		return 0, 0, err
	}
	m, err := p.WaitFor(regexp.MustCompile(`^count `+tag+` calls=(\d+) failed=(\d+)`), 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	calls, _ = strconv.Atoi(m[1])
	failed, _ = strconv.Atoi(m[2])
	return calls, failed, nil
}

func (d *cluster) run() error {
	dc, hosts, err := d.setUp()
	if err != nil {
		return err
	}
	mc, err := dc.command("cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding").Output()
	if err != nil {
		return err
	}
	fmt.Printf("demo-cluster: data centre %s; host1 10.77.1.2, host2 10.77.2.2, host3 10.77.3.2, each on a routed veth link to it (no bridge; multicast forwarding %s)\n",
		dcAddr, map[bool]string{true: "off", false: "ON"}[strings.TrimSpace(string(mc)) == "0"])
	if strings.TrimSpace(string(mc)) != "0" {
		return errors.New("the data centre forwards multicast")
	}

	tmp, err := os.MkdirTemp("", "micro-cluster-dc")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dcp, err := d.start(dc, "dc", "dc", "-address", dcAddr, "-dir", tmp)
	if err != nil {
		return err
	}
	if _, err := dcp.WaitFor(reDCReady, 30*time.Second); err != nil {
		return err
	}
	for i, h := range hosts[:2] {
		name := fmt.Sprintf("greeter-%d", i+1)
		p, err := d.start(h, name, "server", "-address", fmt.Sprintf("10.77.%d.2:0", i+1), "-instance", name)
		if err != nil {
			return err
		}
		if _, err := p.WaitFor(reServing, 30*time.Second); err != nil {
			return err
		}
	}
	sub, err := d.start(hosts[2], "auditor", "subscriber", "-instance", "auditor")
	if err != nil {
		return err
	}
	if _, err := sub.WaitFor(reSubscribed, 30*time.Second); err != nil {
		return err
	}
	if err := d.micro(hosts[2]); err != nil {
		return err
	}
	fmt.Println("demo-cluster: the client on host3 knows only the name \"greeter\"; steady load begins")
	cli, err := d.start(hosts[2], "client", "client", "-load", "60s", "-workers", "4")
	if err != nil {
		return err
	}
	time.Sleep(d.step)
	if err := cli.Send("publish first-event"); err != nil {
		return err
	}
	if _, err := sub.WaitFor(handled("first-event"), 15*time.Second); err != nil {
		return err
	}

	fmt.Println("demo-cluster: stopping the subscriber, publishing while it is down, starting it again")
	if err := sub.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		return err
	}
	if err := cli.Send("publish while-you-were-away"); err != nil {
		return err
	}
	if _, err := cli.WaitFor(regexp.MustCompile(`^published while-you-were-away$`), 15*time.Second); err != nil {
		return err
	}
	sub2, err := d.start(hosts[2], "auditor", "subscriber", "-instance", "auditor")
	if err != nil {
		return err
	}
	_, errAway := sub2.WaitFor(handled("while-you-were-away"), 20*time.Second)
	delivered := errAway == nil

	time.Sleep(d.step)
	fmt.Println("demo-cluster: restarting etcd under load")
	calls0, failed0, err := count(cli, "before-restart")
	if err != nil {
		return err
	}
	if err := dcp.Send("restart-etcd"); err != nil {
		return err
	}
	m, err := dcp.WaitFor(reRestarted, 40*time.Second)
	if err != nil {
		return err
	}
	calls1, failed1, err := count(cli, "after-restart")
	if err != nil {
		return err
	}
	time.Sleep(d.step)
	if err := cli.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		return err
	}
	sm, err := cli.WaitFor(reSummary, 5*time.Second)
	if err != nil {
		return err
	}
	calls, _ := strconv.Atoi(sm[1])
	failed, _ := strconv.Atoi(sm[2])
	by := sm[3]

	fmt.Fprintln(&d.summary, "demo-cluster: summary")
	fmt.Fprintf(&d.summary, "  %d calls by name through etcd, %d failed; answered by: %s\n", calls, failed, by)
	fmt.Fprintf(&d.summary, "  event published while the subscriber was down, delivered after it came back: %v\n", delivered)
	fmt.Fprintf(&d.summary, "  etcd restarted (%ss from stopping to serving): %d calls during the restart, %d failed\n", m[1], calls1-calls0, failed1-failed0)
	switch {
	case calls == 0 || failed != 0:
		return fmt.Errorf("%d calls, %d failed", calls, failed)
	case !strings.Contains(by, "greeter-1=") || !strings.Contains(by, "greeter-2="):
		return fmt.Errorf("not both greeters answered: %s", by)
	case !delivered:
		return fmt.Errorf("the event published while the subscriber was down: %v", errAway)
	case calls1 == calls0 || failed1 != failed0:
		return fmt.Errorf("during the etcd restart: %d calls, %d failed", calls1-calls0, failed1-failed0)
	}
	return nil
}
