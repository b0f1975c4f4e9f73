package codegen_test

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGoldenCompiles generates protoc-gen-go's and our code for every golden
// case into a throwaway module (example.com, beside this one through a
// replace directive) and runs go vet over it, which type-checks it. The
// golden cases' Go packages are all under example.com/<case>/. Beside each
// generated file it writes assertions that the service's handler interface
// is implemented by UnimplementedXHandler and by a struct that embeds it and
// declares nothing else, which is what keeps implementations compiling when
// a method is added.
func TestGoldenCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root, err := filepath.Abs(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	assertions := 0
	for _, c := range goldenCases {
		_, files := runPlugin(t, c.request(t), true)
		for _, f := range files {
			prefix := "example.com/" + c.dir + "/"
			if !strings.HasPrefix(f.GoImportPath, prefix) {
				t.Fatalf("%s: Go package %q is not under %s", c.dir, f.GoImportPath, prefix)
			}
			dst := filepath.Join(mod, filepath.FromSlash(strings.TrimPrefix(f.GoImportPath, "example.com/")), path.Base(f.Name))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, f.Content, 0o644); err != nil {
				t.Fatal(err)
			}
			if check := unimplementedAssertions(f.Content); check != nil {
				if err := os.WriteFile(strings.TrimSuffix(dst, ".go")+"_unimplemented.go", check, 0o644); err != nil {
					t.Fatal(err)
				}
				assertions++
			}
		}
	}
	if assertions == 0 {
		t.Fatal("no golden case declares an UnimplementedXHandler")
	}
	goMod := fmt.Sprintf(`module example.com

go 1.24

require github.com/protoc-gen-micro/micro v0.0.0

replace github.com/protoc-gen-micro/micro => %s
`, filepath.ToSlash(root))
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(goCmd, "vet", "./...")
	cmd.Dir = mod
	// -mod=mod lets the go command complete go.mod from the module cache.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the generated code: %v\n%s", err, out)
	}
}

var (
	packageClause     = regexp.MustCompile(`(?m)^package (\w+)$`)
	unimplementedType = regexp.MustCompile(`(?m)^type Unimplemented(\w+Handler) struct\{\}$`)
)

// unimplementedAssertions returns a Go file, in the package of the
// generated file src, asserting for every UnimplementedXHandler in src that
// it and a struct embedding it implement XHandler; nil if src declares none.
func unimplementedAssertions(src []byte) []byte {
	types := unimplementedType.FindAllSubmatch(src, -1)
	if len(types) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\n", packageClause.FindSubmatch(src)[1])
	for _, m := range types {
		handler := string(m[1])
		fmt.Fprintf(&b, "var _ %s = Unimplemented%s{}\n", handler, handler)
		fmt.Fprintf(&b, "var _ %s = struct{ Unimplemented%s }{}\n", handler, handler)
	}
	return []byte(b.String())
}
