package oauth_test

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mcp-oauth/oauth"

// packageImports returns, for every package directory of the module, the
// module packages its non-test files import.
func packageImports(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if out[dir] == nil {
			out[dir] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == module {
				out[dir]["."] = true
			} else if rest, ok := strings.CutPrefix(p, module+"/"); ok {
				out[dir][rest] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportGraph keeps the package seams of DESIGN.md: the root imports
// nothing of the module; internal, storage, provider and approval never import
// upwards; approval never imports provider; the federation packages
// (upstream, extauth, proxy, tokenexchange) import only the root and
// internal packages; only mcpauth (and the programs)
// know every part.
func TestImportGraph(t *testing.T) {
	graph := packageImports(t)
	if len(graph) < 10 {
		t.Fatalf("found only %d packages; is the test run from the module root?", len(graph))
	}
	under := func(dir, prefix string) bool { return dir == prefix || strings.HasPrefix(dir, prefix+"/") }
	for dir, imports := range graph {
		for imp := range imports {
			var bad bool
			switch {
			case dir == ".":
				bad = true
			case under(dir, "internal"):
				bad = under(imp, "provider") || under(imp, "approval") || under(imp, "mcpauth")
			case under(dir, "storage"):
				bad = under(imp, "provider") || under(imp, "approval") || under(imp, "mcpauth")
			case under(dir, "provider"):
				bad = under(imp, "approval") || under(imp, "mcpauth")
			case under(dir, "approval"):
				bad = under(imp, "provider") || under(imp, "mcpauth") || (under(imp, "storage") && imp != "storage")
			case under(dir, "upstream"), under(dir, "extauth"), under(dir, "proxy"), under(dir, "tokenexchange"):
				// The federation packages know the root contract alone.
				bad = imp != "." && !under(imp, "internal")
			}
			if bad {
				t.Errorf("package %s imports %s, against the one-way import graph", dir, imp)
			}
		}
	}
}

// TestLibraryFileSizes keeps every non-test Go file under 600 lines, so
// that each reads as one concern.
func TestLibraryFileSizes(t *testing.T) {
	for dir := range packageImports(t) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for sc := bufio.NewScanner(fh); sc.Scan(); {
				n++
			}
			fh.Close()
			if n > 600 {
				t.Errorf("%s has %d lines; cut it by concern (at most 600)", f, n)
			}
		}
	}
}
