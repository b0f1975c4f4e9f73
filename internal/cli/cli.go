// Package cli is the micro command (cmd/micro): it lists and watches what
// the registry sees, describes and calls services through server
// reflection, checks their health and publishes events, choosing registry,
// broker and TLS from the MICRO_ variables as a service does
// (internal/envconfig). cmd/micro is a one-line main around Main, so that
// tests, and builds of micro with plug-ins compiled in, run the same code.
//
// Everything read from a server (registry records, reflection answers,
// responses) is bounded: see the limits in reflect.go and the client's
// own message size limit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/protoc-gen-micro/micro/internal/envconfig"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Exit statuses, as grpcurl's: an RPC that failed exits with exitRPC plus
// its status code.
const (
	exitOK      = 0
	exitFailure = 1  // anything but an RPC: no node, no reflection, bad input
	exitUsage   = 2  // the command line is wrong
	exitRPC     = 64 // plus the gRPC status code of a failed RPC
)

// exitError is an error with the exit status it calls for.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usagef is a usage error.
func usagef(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

// rpcError is the error of an RPC that failed, exiting with 64 plus its
// status code. what says which call it was.
func rpcError(what string, err error) error {
	st := status.Convert(err)
	return &exitError{exitRPC + int(st.Code()), fmt.Errorf("%s: %s: %s", what, st.Code(), printable(st.Message()))}
}

// exitCode is the exit status err calls for.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// command is one subcommand.
type command struct {
	name, args, summary string
	// help is the rest of the command's -h, after the usage line.
	help string
	// flags defines the command's own flags on fs; nil for none.
	flags func(fs *flag.FlagSet, o *opts)
	// run runs the command with its positional arguments.
	run func(ctx context.Context, e *env, args []string) error
}

// opts are the flags commands share and their own.
type opts struct {
	output   string
	timeout  time.Duration
	address  string
	headers  headerFlag
	hservice string
	typ      string
	optional bool
}

// headerFlag collects repeated -H key:value flags.
type headerFlag []string

func (h *headerFlag) String() string { return strings.Join(*h, ", ") }
func (h *headerFlag) Set(v string) error {
	k, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q is not key:value", v)
	}
	*h = append(*h, v)
	return nil
}

var commands = []*command{
	servicesCmd, watchCmd, describeCmd, callCmd, healthCmd, publishCmd,
}

// Main runs the micro command with args (without the program's name) and
// returns its exit status. It reads the MICRO_ variables from the
// process's environment; ctx ending (on SIGINT in cmd/micro) stops
// commands that run until interrupted.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				commandUsage(stdout, c, newFlagSet(c, &opts{}, stdout))
				return exitOK
			}
			fmt.Fprintf(stderr, "micro: no command %q\n\n", args[1])
			mainUsage(stderr)
			return exitUsage
		}
		mainUsage(stdout)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "micro: no command %q\n\n", name)
		mainUsage(stderr)
		return exitUsage
	}
	var o opts
	fs := newFlagSet(c, &o, stderr)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(stdout, c, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "micro %s: %v\nrun 'micro %s -h' for help\n", c.name, err, c.name)
		return exitUsage
	}
	if o.output != "text" && o.output != "json" {
		fmt.Fprintf(stderr, "micro %s: -o %q: want text or json\n", c.name, o.output)
		return exitUsage
	}
	cfg, err := envconfig.Read(os.Environ(), fs)
	if err != nil {
		fmt.Fprintf(stderr, "micro %s: %v\n", c.name, err)
		return exitUsage
	}
	e := &env{opts: o, cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err = c.run(ctx, e, pos)
	e.close()
	if err != nil {
		fmt.Fprintf(stderr, "micro %s: %v\n", c.name, err)
		if exitCode(err) == exitUsage {
			fmt.Fprintf(stderr, "run 'micro %s -h' for help\n", c.name)
		}
		return exitCode(err)
	}
	return exitOK
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// settingFlags are the service settings the commands take as flags too;
// only publish uses a broker.
var settingFlags = []string{"registry", "registry_address", "tls_cert", "tls_key", "tls_ca"}
var brokerFlags = []string{"broker", "broker_address"}

func newFlagSet(c *command, o *opts, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("micro "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "text", "output: text, or json (one JSON document; JSON lines for streams)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up after this long, e.g. 5s (0: no limit but the registry's own)")
	if c.flags != nil {
		c.flags(fs, o)
	}
	for _, s := range envconfig.Settings {
		if slices.Contains(settingFlags, s.Flag) || c == publishCmd && slices.Contains(brokerFlags, s.Flag) {
			fs.String(s.Flag, "", s.Usage+" (env "+s.Env+")")
		}
	}
	return fs
}

// parseInterspersed parses fs's flags wherever they are among args and
// returns the other arguments, so that `micro call greeter SayHello -H a:b`
// works as `micro call -H a:b greeter SayHello` does.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// fs.Parse consumed a "--": what follows is all positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

const exitHelp = `Exit status:
  0        success
  1        a failure other than an RPC's: no node found, reflection
           unavailable, bad JSON, a broker or registry error
  2        usage error
  64+code  an RPC failed with that gRPC status code, e.g. 68 for
           DeadlineExceeded, 78 for Unavailable, 76 for Unimplemented
`

const envHelp = `The registry, broker and TLS are chosen as a service chooses them:
MICRO_REGISTRY (mdns, the default, or memory), MICRO_REGISTRY_ADDRESS,
MICRO_BROKER (direct, the default, or memory), MICRO_BROKER_ADDRESS,
MICRO_TLS_CERT, MICRO_TLS_KEY, MICRO_TLS_CA and MICRO_MDNS_INTERFACES, or
the flags of the same names (-registry, -broker, -tls_ca...). A plug-in
registry or broker (etcd, nats) must be compiled into micro: this build
has none. Such a micro is a main inside this repository's module tree
that imports the plug-in and calls internal/cli's Main.
`

func mainUsage(w io.Writer) {
	fmt.Fprint(w, "micro lists, describes, calls and checks the services of protoc-gen-micro.\n\nUsage:\n  micro <command> [arguments] [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'micro help <command>' or 'micro <command> -h' for a command's\narguments and flags.\n\n")
	fmt.Fprint(w, envHelp, "\n", exitHelp)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: micro %s %s\n\n%s\n%s\n", c.name, c.args, c.summary, strings.TrimSpace(c.help))
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, "\n", exitHelp)
}

// printable returns s as it is when every rune of it prints plainly, and
// quoted otherwise: registry records and error messages come from peers,
// and a terminal must not run the escape sequences they may hold.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
