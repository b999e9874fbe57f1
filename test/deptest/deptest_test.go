// Package deptest enforces the layers of docs/design.md on the import graph,
// in the style of tailscale's tstest/deptest: leaves import only leaves,
// features never import a composition root, and a few named packages stay
// out of the places that must not pull them in (the relay server out of
// every client, the camera out of every viewer, board hardware out of
// cmd/camagent). A new package must be given its layer here, so the map
// cannot silently go stale.
package deptest

import (
	"encoding/json"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/testtier"
)

const module = "github.com/camagent/camagent"

type layer int

const (
	leaf        layer = iota // wire formats, codecs, small shared utilities
	feature                  // one concern each: capture, stream, p2p, storage...
	composition              // processes: the camera, the viewer, the CLI, labs
)

func (l layer) String() string { return [...]string{"leaf", "feature", "composition"}[l] }

// layers places every package of the module by path prefix; the longest
// matching prefix wins.
var layers = map[string]layer{
	"internal/base":      leaf,
	"stream/wire":        leaf,
	"storage/recwire":    leaf,
	"storage/mp4scan":    leaf,
	"p2p/natwire":        leaf,
	"p2p/masque/wire":    leaf,
	"p2p/masque/profile": leaf,

	"internal/feature": feature,
	"board":            feature,
	"capture":          feature,
	"motion":           feature,
	"stream":           feature,
	"storage":          feature,
	"p2p":              feature,
	"systemd":          feature,

	"internal/core":  composition,
	"cmd":            composition,
	"test":           composition,
	"internal/tools": composition, // programs run by make: the test wrapper, the tree guard
}

func layerOf(rel string) (layer, bool) {
	best, found := "", false
	var l layer
	for prefix, pl := range layers {
		if (rel == prefix || strings.HasPrefix(rel, prefix+"/")) && len(prefix) >= len(best) {
			best, l, found = prefix, pl, true
		}
	}
	return l, found
}

// forbidden lists packages (relative paths) that must not be among the
// transitive dependencies of others, with the reason.
var forbidden = []struct {
	from, dep, why string
}{
	{"p2p/relayclient", "p2p/relayserver", "the relay client must not carry the relay server"},
	{"internal/core/viewer", "p2p/relayserver", "a viewer must not carry the relay server"},
	{"internal/core/viewer", "internal/core/agent", "a viewer must not carry the camera"},
	{"internal/feature/pairing", "p2p/relayserver", "pairing must not carry the relay server"},
	{"internal/feature/pairing", "internal/core/agent", "pairing must not carry the camera"},
	{"storage", "motion", "storage bounds motion events through storage.Companion"},
	{"storage/playback", "motion", "playback reads events through playback.EventLog"},
}

// forbiddenDirect lists direct imports that are not allowed even where the
// package is a transitive dependency.
var forbiddenDirect = []struct {
	from, dep, why string
}{
	{"cmd/camagent", "board", "cmd/camagent is flags and wiring; the camera's composition drives the board"},
	{"cmd/camagent", "p2p/traversal", "cmd/camagent is flags and wiring; the viewer's session runs NAT traversal"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	testtier.Slow(t, "runs go list over the module")
	cmd := exec.Command("go", "list", "-json", "-deps=false", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	r, ok := strings.CutPrefix(importPath, module+"/")
	return r, ok
}

func TestLayers(t *testing.T) {
	for _, p := range listPackages(t) {
		from, _ := rel(p.ImportPath)
		fl, ok := layerOf(from)
		if !ok {
			t.Errorf("%s has no layer: place it in deptest's layers map and docs/design.md", from)
			continue
		}
		for _, imp := range p.Imports {
			to, ours := rel(imp)
			if !ours {
				continue
			}
			tl, ok := layerOf(to)
			if !ok {
				continue // reported as its own package
			}
			if tl > fl || (fl == leaf && tl != leaf) {
				t.Errorf("%s (%v) imports %s (%v): a %v may import only %s", from, fl, to, tl, fl, allowed(fl))
			}
		}
		for _, f := range forbiddenDirect {
			if from == f.from && slices.Contains(p.Imports, module+"/"+f.dep) {
				t.Errorf("%s imports %s: %s", from, f.dep, f.why)
			}
		}
		for _, f := range forbidden {
			if from == f.from && slices.Contains(p.Deps, module+"/"+f.dep) {
				t.Errorf("%s depends on %s: %s", from, f.dep, f.why)
			}
		}
	}
}

func allowed(l layer) string {
	switch l {
	case leaf:
		return "leaves"
	case feature:
		return "leaves and features"
	}
	return "anything"
}

// TestLayerTable checks the classifier itself on known paths, so a typo in
// the map cannot make TestLayers pass vacuously.
func TestLayerTable(t *testing.T) {
	tests := []struct {
		rel  string
		want layer
	}{
		{"internal/base/h264", leaf},
		{"stream/wire", leaf},
		{"stream", feature},
		{"p2p/masque/wire", leaf},
		{"p2p/relayserver", feature},
		{"internal/feature/identity", feature},
		{"internal/core/agent", composition},
		{"cmd/camagent", composition},
		{"storage/playback", feature},
	}
	for _, tt := range tests {
		got, ok := layerOf(tt.rel)
		if !ok || got != tt.want {
			t.Errorf("layerOf(%s) = %v, %v; want %v", tt.rel, got, ok, tt.want)
		}
	}
	if _, ok := layerOf(path.Join("nowhere", "pkg")); ok {
		t.Error("an unknown path got a layer")
	}
}
