package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/testtier"
)

func pe() []byte {
	b := make([]byte, 0x90)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	return b
}

func TestBinaryKind(t *testing.T) {
	for _, tt := range []struct {
		head []byte
		want string
	}{
		{[]byte("\x7fELF\x02\x01\x01"), "ELF"},
		{[]byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, "Mach-O"},
		{[]byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2}, "Mach-O"},
		{pe(), "PE"},
		{[]byte("MZ is a text file that starts like a DOS stub, with no PE header at all, long enough for e_lfanew"), ""},
		{[]byte("#!/bin/sh\n"), ""},
		{[]byte("\x7fEL"), ""},
		{nil, ""},
	} {
		if got := binaryKind(tt.head); got != tt.want {
			t.Errorf("binaryKind(%q) = %q, want %q", tt.head, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	elf := []byte("\x7fELF\x02\x01\x01")
	for _, tt := range []struct {
		e    entry
		size int64
		head []byte
		want []string // substrings, one per problem
	}{
		{entry{mode: "100644", path: "a.go"}, 100, []byte("package a"), nil},
		{entry{mode: "100755", path: "scripts/x.sh"}, 100, []byte("#!/bin/sh\n"), nil},
		{entry{mode: "100755", path: "a.go"}, 100, []byte("package a"), []string{"a.go: executable bit on a file that is not a #! script"}},
		{entry{mode: "100644", path: "cmd/camagent/camagent"}, 100, elf, []string{"compiled binary (ELF) outside testdata/"}},
		{entry{mode: "100755", path: "bin/x"}, 100, elf, []string{"compiled binary (ELF)", "executable bit"}},
		{entry{mode: "100755", path: "p/testdata/tool"}, 100, elf, nil},
		{entry{mode: "100644", path: "p/testdata/big.h264"}, maxSize + 1, nil, []string{"p/testdata/big.h264: 1.0 MiB, over the 1 MiB limit"}},
		{entry{mode: "100644", path: "docs/a.md"}, maxSize, []byte("# a"), nil},
		{entry{mode: "100644", path: "testdatax/y"}, 10, elf, []string{"ELF"}},
	} {
		got := check(tt.e, tt.size, tt.head)
		if len(got) != len(tt.want) {
			t.Errorf("%+v: %q, want %d problems", tt.e, got, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%+v: %q lacks %q", tt.e, got[i], w)
			}
		}
	}
}

// TestGuardOnARepository commits a clean tree, then a large file, a binary
// and a stray executable bit, and runs the guard on each.
func TestGuardOnARepository(t *testing.T) {
	testtier.Slow(t, "runs git on a temporary repository")
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	guard := func() (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(dir, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	elf := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 100)...)

	git("init", "-q")
	write("README.md", []byte("# r\n"), 0o644)
	write("scripts/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("p/testdata/fixture.bin", elf, 0o755)
	write("p/testdata/stream.h264", make([]byte, 300<<10), 0o644)
	git("add", "-A")
	git("commit", "-qm", "clean")
	if code, out := guard(); code != 0 || !strings.Contains(out, "treeguard: 4 tracked files") {
		t.Fatalf("clean tree: exit %d\n%s", code, out)
	}

	write("docs/big.pdf", make([]byte, 2<<20), 0o644)
	write("camagent", elf, 0o755)
	write("tool.exe", pe(), 0o644)
	write("internal/x.go", []byte("package x\n"), 0o755)
	git("add", "-A") // the index is what a commit would hold
	code, out := guard()
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, w := range []string{
		"docs/big.pdf: 2.0 MiB, over the 1 MiB limit",
		"camagent: compiled binary (ELF) outside testdata/",
		"camagent: executable bit",
		"tool.exe: compiled binary (PE)",
		"internal/x.go: executable bit on a file that is not a #! script",
		"FAIL: 5 problems in 8 tracked files",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	for _, ok := range []string{"scripts/run.sh", "p/testdata", "README.md"} {
		if strings.Contains(out, ok) {
			t.Errorf("output blames %s", ok)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
