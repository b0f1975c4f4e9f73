// Package readmecheck checks that the Go programs the README shows compile
// against the current API, imports included.
package readmecheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

var goProgram = regexp.MustCompile("(?s)```go\n(package main\n.*?)```")

func TestReadmeProgramsCompile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	programs := goProgram.FindAllSubmatch(readme, -1)
	if len(programs) < 2 {
		t.Fatalf("found %d Go programs in the README, want the server and the client", len(programs))
	}
	// The programs must be inside the module to import it; testdata keeps
	// them out of ./... patterns.
	dir, err := os.MkdirTemp("testdata", "readme")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var pkgs []string
	for i, p := range programs {
		pkg := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, "main.go"), p[1], 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, "./"+filepath.ToSlash(pkg))
	}
	out, err := exec.Command("go", append([]string{"vet"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("a README program does not compile:\n%s", out)
	}
}
