package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/interop/grpc_testing"
)

// TestUpToDate fails when testpb/test.pb.micro.go is not what the generator
// writes today.
func TestUpToDate(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "testpb", "test.pb.micro.go")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go generate ./testpb", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run go generate ./testpb from interop/", path)
	}
}

func TestImportsComeFirst(t *testing.T) {
	req, err := request(grpc_testing.File_grpc_testing_test_proto)
	if err != nil {
		t.Fatal(err)
	}
	files := req.GetProtoFile()
	if last := files[len(files)-1].GetName(); last != "grpc/testing/test.proto" {
		t.Fatalf("last file is %s, want the file to generate", last)
	}
	for _, name := range []string{"grpc/testing/messages.proto", "grpc/testing/empty.proto"} {
		found := false
		for _, f := range files {
			found = found || f.GetName() == name
		}
		if !found {
			t.Errorf("request lacks %s", name)
		}
	}
}
