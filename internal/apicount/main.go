// Command apicount counts the exported identifiers of the public runtime
// packages: exported types, functions, constants and variables, and the
// exported methods and fields of exported types (interface methods count as
// methods). Test files and packages under an internal directory are skipped.
//
//	go run ./internal/apicount            # per package, then the total
//	go run ./internal/apicount -max 350   # exits 1 when the total is above 350
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	root := flag.String("root", "runtime", "directory holding the public packages")
	max := flag.Int("max", 0, "fail when the total is above this (0: no limit)")
	list := flag.Bool("list", false, "print every identifier, not only the counts")
	flag.Parse()

	counts, names, err := count(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apicount:", err)
		os.Exit(2)
	}
	dirs := make([]string, 0, len(counts))
	for d := range counts {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	total := 0
	for _, d := range dirs {
		fmt.Printf("%5d  %s\n", counts[d], d)
		if *list {
			for _, n := range names[d] {
				fmt.Printf("         %s\n", n)
			}
		}
		total += counts[d]
	}
	fmt.Printf("%5d  total in %d packages\n", total, len(dirs))
	if *max > 0 && total > *max {
		fmt.Fprintf(os.Stderr, "apicount: %d exported identifiers, above the limit of %d\n", total, *max)
		os.Exit(1)
	}
}

// count walks root and returns, per package directory, the number of
// exported identifiers and their names.
func count(root string) (map[string]int, map[string][]string, error) {
	counts := map[string]int{}
	names := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		switch base := d.Name(); {
		case base == "internal", base == "testdata", strings.HasPrefix(base, "."):
			return filepath.SkipDir
		}
		ids, err := packageIdents(path)
		if err != nil {
			return err
		}
		if ids != nil {
			sort.Strings(ids)
			counts[path] = len(ids)
			names[path] = ids
		}
		return nil
	})
	return counts, names, err
}

// packageIdents returns the exported identifiers of the package in dir, or
// nil when dir holds no non-test Go files.
func packageIdents(dir string) ([]string, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, pkg := range pkgs {
		if strings.HasSuffix(pkg.Name, "_test") {
			continue
		}
		exportedTypes := map[string]bool{}
		for _, f := range pkg.Files {
			for _, decl := range f.Decls {
				if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
					for _, s := range gd.Specs {
						if ts := s.(*ast.TypeSpec); ts.Name.IsExported() {
							exportedTypes[ts.Name.Name] = true
						}
					}
				}
			}
		}
		for _, f := range pkg.Files {
			for _, decl := range f.Decls {
				ids = append(ids, declIdents(decl, exportedTypes)...)
			}
		}
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

func declIdents(decl ast.Decl, exportedTypes map[string]bool) []string {
	var ids []string
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return nil
		}
		if d.Recv == nil {
			return []string{"func " + d.Name.Name}
		}
		if recv := receiverName(d.Recv.List[0].Type); exportedTypes[recv] {
			return []string{"method " + recv + "." + d.Name.Name}
		}
	case *ast.GenDecl:
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.IsExported() {
						ids = append(ids, d.Tok.String()+" "+n.Name)
					}
				}
			case *ast.TypeSpec:
				if !s.Name.IsExported() {
					continue
				}
				ids = append(ids, "type "+s.Name.Name)
				ids = append(ids, memberIdents(s.Name.Name, s.Type)...)
			}
		}
	}
	return ids
}

// memberIdents returns the exported fields of a struct type and the
// exported methods of an interface type.
func memberIdents(typeName string, t ast.Expr) []string {
	var ids []string
	var fields *ast.FieldList
	kind := "field "
	switch t := t.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields, kind = t.Methods, "method "
	default:
		return nil
	}
	for _, f := range fields.List {
		if len(f.Names) == 0 { // embedded
			if n := receiverName(f.Type); n != "" && ast.IsExported(n) {
				ids = append(ids, kind+typeName+"."+n)
			}
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				ids = append(ids, kind+typeName+"."+n.Name)
			}
		}
	}
	return ids
}

// receiverName returns the type name of a receiver or embedded field,
// without pointers, package qualifiers or type parameters.
func receiverName(t ast.Expr) string {
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
