package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWiringOnly keeps cmd/camagent to flags and wiring: the components
// live in the composition roots (internal/core/agent runs the board and
// systemd's notifications, internal/core/viewer the viewing session), so
// the command package imports neither the hardware nor sd_notify itself.
func TestWiringOnly(t *testing.T) {
	forbidden := []string{
		"github.com/camagent/camagent/board",
		"github.com/coreos/go-systemd/v22/daemon",
		"github.com/camagent/camagent/p2p/traversal",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s: that belongs in a composition root under internal/core", name, path)
				}
			}
		}
	}
}
