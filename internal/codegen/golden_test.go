package codegen_test

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// goldenCase is a directory of testdata: every .proto file in it is
// generated with parameter.
type goldenCase struct {
	dir       string
	parameter string
	compiler  *pluginpb.Version // nil: the request names no compiler
	outputs   []string          // the .pb.micro.go files expected, in order
}

var protoc = &pluginpb.Version{Major: proto.Int32(5), Minor: proto.Int32(29), Patch: proto.Int32(3)}

var goldenCases = []goldenCase{
	{dir: "streams", parameter: "paths=source_relative", compiler: protoc,
		outputs: []string{"streams.pb.micro.go"}},
	{dir: "multi", parameter: "paths=source_relative", compiler: protoc,
		outputs: []string{"multi.pb.micro.go"}},
	// Default paths=import: the output is named by its Go import path.
	{dir: "imports",
		outputs: []string{"example.com/imports/api/api.pb.micro.go"}},
	{dir: "deprecated", parameter: "paths=source_relative", compiler: &pluginpb.Version{
		Major: proto.Int32(6), Minor: proto.Int32(31), Patch: proto.Int32(0), Suffix: proto.String("rc1")},
		outputs: []string{"deprecated.pb.micro.go"}},
	{dir: "optional", parameter: "paths=source_relative", compiler: protoc,
		outputs: []string{"optional.pb.micro.go"}},
	{dir: "editions", parameter: "paths=source_relative", compiler: protoc,
		outputs: []string{"editions.pb.micro.go"}},
	{dir: "noservice", parameter: "paths=source_relative", compiler: protoc},
	{dir: "shadowing", parameter: "paths=source_relative", compiler: protoc,
		outputs: []string{"client/service.pb.micro.go"}},
	// The M parameter gives a file without go_package its Go package.
	{dir: "params", parameter: "paths=source_relative,Mmapped/foo.proto=example.com/params/foopb;foopb", compiler: protoc,
		outputs: []string{"mapped/foo.pb.micro.go"}},
}

func (c goldenCase) request(t testing.TB) *pluginpb.CodeGeneratorRequest {
	dir := filepath.Join(moduleRoot(t), "testdata", c.dir)
	return newRequest(t, dir, protoFiles(t, dir), c.parameter, c.compiler)
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.dir, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(moduleRoot(t), "testdata", c.dir)
			resp, files := runPlugin(t, c.request(t), false)
			if resp.Error != nil {
				t.Fatalf("plugin error: %s", resp.GetError())
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
			}
			if strings.Join(names, " ") != strings.Join(c.outputs, " ") {
				t.Fatalf("generated %q, want %q", names, c.outputs)
			}
			want := map[string]bool{}
			for _, f := range files {
				if formatted, err := format.Source(f.Content); err != nil || !bytes.Equal(formatted, f.Content) {
					t.Errorf("%s is not gofmt-clean (%v)", f.Name, err)
				}
				golden := filepath.Join(dir, filepath.FromSlash(f.Name)+".golden")
				want[golden] = true
				compareGolden(t, golden, f.Content)
			}
			// A golden file that nothing generates any more is stale too.
			filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(path, ".golden") && !want[path] {
					if *update {
						os.Remove(path)
					} else {
						t.Errorf("%s: not generated any more; run go test ./internal/codegen -run . -update", path)
					}
				}
				return nil
			})
		})
	}
}

// compareGolden fails unless content is the file at path, or rewrites the
// file with -update.
func compareGolden(t *testing.T, path string, content []byte) {
	t.Helper()
	compare(t, path, content, func(b []byte) []byte { return b })
}

// compare fails unless content is the file at path once both went through
// normalize, or rewrites the file with -update.
func compare(t *testing.T, path string, content []byte, normalize func([]byte) []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run go test ./internal/codegen -run . -update", err)
	}
	if !bytes.Equal(normalize(content), normalize(want)) {
		t.Errorf("%s is stale; run go test ./internal/codegen -run . -update\n%s", path, lineDiff(want, content))
	}
}

// lineDiff describes the first line where got differs from want.
func lineDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n   got: %s", i+1, wl, gl)
		}
	}
	return "identical lines, different bytes"
}

// TestDeterministic generates every case twice and expects the same bytes.
func TestDeterministic(t *testing.T) {
	for _, c := range goldenCases {
		req := c.request(t)
		_, first := runPlugin(t, req, true)
		_, second := runPlugin(t, proto.Clone(req).(*pluginpb.CodeGeneratorRequest), true)
		if len(first) != len(second) {
			t.Fatalf("%s: %d files, then %d", c.dir, len(first), len(second))
		}
		for i := range first {
			if first[i].Name != second[i].Name || !bytes.Equal(first[i].Content, second[i].Content) {
				t.Errorf("%s: %s differs between runs", c.dir, first[i].Name)
			}
		}
	}
}

func TestResponseFeatures(t *testing.T) {
	resp, _ := runPlugin(t, goldenCases[0].request(t), false)
	wantFeatures := uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
		pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	if resp.GetSupportedFeatures() != wantFeatures {
		t.Errorf("supported features %b, want %b", resp.GetSupportedFeatures(), wantFeatures)
	}
	if got, want := resp.GetMinimumEdition(), int32(descriptorpb.Edition_EDITION_PROTO2); got != want {
		t.Errorf("minimum edition %d, want %d", got, want)
	}
	if got, want := resp.GetMaximumEdition(), int32(descriptorpb.Edition_EDITION_2024); got != want {
		t.Errorf("maximum edition %d, want %d", got, want)
	}
}

func TestVersion(t *testing.T) {
	if codegen.PluginName+" "+codegen.Version != "protoc-gen-micro v0.1.0" {
		t.Errorf("version %s %s", codegen.PluginName, codegen.Version)
	}
}
