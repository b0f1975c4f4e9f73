//go:build unix

package service_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

func TestRunStopsOnSIGTERM(t *testing.T) {
	leakcheck.Check(t)
	srv, reg := newFakes(nil)
	// Run installs its signal handler before Start, so once AfterStart has
	// run, SIGTERM reaches the handler instead of killing the test binary.
	startedc := make(chan struct{})
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv),
		service.WithAfterStart(func() error { close(startedc); return nil }),
	)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run() }()
	select {
	case <-startedc:
	case err := <-errc:
		t.Fatalf("Run = %v before starting", err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	if _, stopped := srv.counts(); stopped != 1 {
		t.Fatalf("server stopped %d times", stopped)
	}
}
