package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestUpToDate fails when the committed generated code under proto/ is not
// what the .proto files and the current generators produce.
func TestUpToDate(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Errorf("generated %d files, want echo.pb.go and echo.pb.micro.go", len(files))
	}
	for name, content := range files {
		path := filepath.Join(root, protoDir, filepath.FromSlash(name))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v; run go run ./internal/gen in bench/", err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s is stale; run go run ./internal/gen in bench/", path)
		}
	}
}
