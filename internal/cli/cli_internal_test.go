package cli

import (
	"bytes"
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args, pos []string
		headers   []string
	}{
		{[]string{"greeter", "SayHello", "-H", "a:1", "{}", "-H", "b:2"}, []string{"greeter", "SayHello", "{}"}, []string{"a:1", "b:2"}},
		{[]string{"-H", "a:1", "greeter", "--", "-H", "x"}, []string{"greeter", "-H", "x"}, []string{"a:1"}},
		{[]string{}, nil, nil},
	} {
		var h headerFlag
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.Var(&h, "H", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || !slices.Equal(h, tc.headers) {
			t.Errorf("parseInterspersed(%q) = %q, %v with -H %q; want %q, -H %q", tc.args, pos, err, h, tc.pos, tc.headers)
		}
	}
}

// TestPrintable: what peers send reaches the terminal quoted when it
// holds control characters (escape sequences, tabs, newlines).
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"greeter-1":            "greeter-1",
		"héllo wörld":          "héllo wörld",
		"evil\x1b]0;pwned\x07": `"evil\x1b]0;pwned\a"`,
		"two\tcolumns":         `"two\tcolumns"`,
		"line\nbreak":          `"line\nbreak"`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestMainUsage runs Main in-process for what needs no network.
func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"help"}, exitOK, "Exit status:"},
		{[]string{"help", "call"}, exitOK, "Usage: micro call <service> <method> [json]"},
		{[]string{"publish", "-h"}, exitOK, "-broker"},
		{[]string{"nope"}, exitUsage, `no command "nope"`},
		{[]string{"call", "-H", "nocolon", "s", "m"}, exitUsage, `"nocolon" is not key:value`},
		{[]string{"describe"}, exitUsage, "want <service> [symbol]"},
		{[]string{"health", "a", "b"}, exitUsage, "want <service>"},
		{[]string{"publish", "t", "{}", "-type", "NoDots"}, exitUsage, "fully qualified"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("micro %q: exit %d, want %d and %q in\n%s%s", tc.args, code, tc.code, tc.out, stdout.String(), stderr.String())
		}
	}
	var stdout bytes.Buffer
	Main(context.Background(), []string{"services", "-h"}, nil, &stdout, &stdout)
	if strings.Contains(stdout.String(), "-broker") {
		t.Error("services -h lists the broker flags, which only publish uses")
	}
}
