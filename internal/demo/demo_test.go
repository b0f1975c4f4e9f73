package demo

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child's lines are matched as they come, its standard input reaches
// it, and a wait for a line it never prints ends when it exits.
func TestProcWaitForAndSend(t *testing.T) {
	p, err := Start("echo", "echo", exec.Command("sh", "-c", `echo ready; read x; echo "got $x"`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitFor(regexp.MustCompile(`^ready$`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Send("hello 42"); err != nil {
		t.Fatal(err)
	}
	m, err := p.WaitFor(regexp.MustCompile(`^got hello (\d+)$`), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "42" {
		t.Fatalf("submatch %q, want 42", m[1])
	}
	_, err = p.WaitFor(regexp.MustCompile(`never`), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited before") {
		t.Fatalf("waiting for a line after the exit: %v, want an error saying it exited", err)
	}
	<-p.Done()
	if got := p.Lines(); len(got) != 2 || got[1] != "got hello 42" {
		t.Fatalf("lines %q", got)
	}
}

// Signal ends a child that exits on the signal, and kills one that does
// not, reporting it.
func TestProcSignal(t *testing.T) {
	p, err := Start("sleep", "sleep", exec.Command("sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}
	stubborn, err := Start("stubborn", "stubborn", exec.Command("sh", "-c", `trap "" TERM; echo trapped; while :; do sleep 1; done`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stubborn.WaitFor(regexp.MustCompile(`^trapped$`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := stubborn.Signal(syscall.SIGTERM, 0); err == nil {
		t.Fatal("Signal reported success for a process that ignores SIGTERM")
	}
	<-stubborn.Done()
}
