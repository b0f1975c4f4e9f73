package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runnerPackage is the conformance runner, pinned by the tool directive in
// go.mod.
const runnerPackage = "connectrpc.com/conformance/cmd/connectconformance"

// TestConformance runs the suite against cmd/server (server mode, the
// runner's reference clients calling it) and cmd/client (client mode, the
// client calling the runner's reference servers).
func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to build the runner and the programs under test")
	}
	bin := t.TempDir()
	goBuild(t, bin, false, runnerPackage)
	// Under -race the programs under test run with the race detector too,
	// so that the runtime is checked for races under the suite's traffic.
	goBuild(t, bin, raceEnabled, "./cmd/server", "./cmd/client")

	for _, run := range []struct{ name, mode string }{{"server", "server"}, {"client", "client"}} {
		t.Run(run.name, func(t *testing.T) {
			runSuite(t, filepath.Join(bin, "connectconformance"), run.mode, run.name, filepath.Join(bin, run.mode))
		})
	}
}

// goBuild builds the main packages into dir, each named after the last
// element of its path.
func goBuild(t *testing.T, dir string, race bool, pkgs ...string) {
	t.Helper()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
}

// runSuite runs the runner in mode, with config/conf.yaml, against program
// and checks its report.
func runSuite(t *testing.T, runner, mode, conf, program string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, runner, "--mode", mode, "--conf", filepath.Join("config", conf+".yaml"), "--", program)
	out, runErr := cmd.CombinedOutput()
	rep, err := parseReport(out)
	if err != nil {
		t.Fatalf("%s mode: %v (runner: %v)\n%s", mode, err, runErr, out)
	}
	t.Logf("%s mode: %d cases, %d passed, %d failed, %d not run, in %v",
		mode, rep.total, rep.passed, rep.failed, rep.notRun, time.Since(start).Round(100*time.Millisecond))
	if bytes.Contains(out, []byte("WARNING: DATA RACE")) {
		t.Errorf("%s mode: the program under test had a data race:\n%s", mode, out)
	}
	if testing.Verbose() {
		t.Logf("runner output:\n%s", out)
	}
	if rep.failed == 0 && rep.notRun == 0 && runErr == nil {
		return
	}
	summary := rep.summary()
	if !testing.Verbose() {
		t.Logf("runner output:\n%s", out)
	}
	t.Errorf("%s mode: %d of %d cases failed, %d not run (runner: %v); by cause:\n%s",
		mode, rep.failed, rep.total, rep.notRun, runErr, summary)
}

// report is what the runner's output says of a run.
type report struct {
	total, passed, failed, notRun int
	// causes maps the first line of a failure's explanation to the cases
	// that failed with it.
	causes map[string][]string
}

var (
	totalLine  = regexp.MustCompile(`(?m)^Total cases: (\d+)$`)
	countLine  = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)
	notRunLine = regexp.MustCompile(`(?m)^Another (\d+) could not be run`)
)

func parseReport(out []byte) (*report, error) {
	total, counts := totalLine.FindSubmatch(out), countLine.FindSubmatch(out)
	if total == nil || counts == nil {
		return nil, fmt.Errorf("the runner printed no summary")
	}
	rep := &report{causes: map[string][]string{}}
	rep.total, _ = strconv.Atoi(string(total[1]))
	rep.passed, _ = strconv.Atoi(string(counts[1]))
	rep.failed, _ = strconv.Atoi(string(counts[2]))
	if m := notRunLine.FindSubmatch(out); m != nil {
		rep.notRun, _ = strconv.Atoi(string(m[1]))
	}
	lines := strings.Split(string(out), "\n")
	for i, line := range lines {
		name, ok := strings.CutPrefix(line, "FAILED: ")
		if !ok {
			continue
		}
		var explanation []string
		for _, l := range lines[i+1:] {
			if !strings.HasPrefix(l, "\t") {
				break
			}
			explanation = append(explanation, strings.TrimSpace(l))
		}
		cause := causeOf(explanation)
		rep.causes[cause] = append(rep.causes[cause], strings.TrimSuffix(name, ":"))
	}
	return rep, nil
}

var (
	// actual error {code: 13 (internal), message: "..."} does not match ...
	mismatchedError = regexp.MustCompile(`^actual error \{code: \d+ \((\w+)\), message: (".*")\}`)
	// received an unexpected error:, then code:CODE_INTERNAL message:"..."
	unexpectedError = regexp.MustCompile(`^code:CODE_(\w+)\s+message:(".*")`)
)

// causeOf names why a case failed: the error the program under test got,
// when the runner shows one, so that cases expecting different outcomes
// group under one cause; the explanation's first line otherwise.
func causeOf(explanation []string) string {
	for _, l := range explanation {
		m := mismatchedError.FindStringSubmatch(l)
		if m == nil {
			m = unexpectedError.FindStringSubmatch(l)
		}
		if m != nil {
			return "got " + strings.ToLower(m[1]) + ": " + m[2]
		}
	}
	if len(explanation) == 0 {
		return "(no explanation)"
	}
	return explanation[0]
}

// summary lists the causes, the most frequent first, each with its count
// and one of its cases.
func (r *report) summary() string {
	causes := make([]string, 0, len(r.causes))
	for c := range r.causes {
		causes = append(causes, c)
	}
	sort.Slice(causes, func(i, j int) bool {
		if a, b := len(r.causes[causes[i]]), len(r.causes[causes[j]]); a != b {
			return a > b
		}
		return causes[i] < causes[j]
	})
	var b strings.Builder
	for _, c := range causes {
		fmt.Fprintf(&b, "%5d × %s\n        e.g. %s\n", len(r.causes[c]), c, r.causes[c][0])
	}
	return b.String()
}
