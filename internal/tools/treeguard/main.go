package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// maxSize is the largest file the repository takes.
const maxSize = 1 << 20

func main() {
	dir := flag.String("C", ".", "the repository to check")
	flag.Parse()
	os.Exit(run(*dir, os.Stdout, os.Stderr))
}

// entry is one file in git's index.
type entry struct {
	mode, object, path string
}

func run(dir string, stdout, stderr io.Writer) int {
	entries, err := index(dir)
	if err != nil {
		fmt.Fprintln(stderr, "treeguard:", err)
		return 2
	}
	var problems []string
	err = contents(dir, entries, func(e entry, size int64, head []byte) {
		problems = append(problems, check(e, size, head)...)
	})
	if err != nil {
		fmt.Fprintln(stderr, "treeguard:", err)
		return 2
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, "treeguard:", p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "treeguard: FAIL: %d problems in %d tracked files\n", len(problems), len(entries))
		return 1
	}
	fmt.Fprintf(stdout, "treeguard: %d tracked files, none over 1 MiB, no binaries or stray executable bits outside testdata/\n", len(entries))
	return 0
}

// check returns what is wrong with one file: size is its size, head its
// first bytes.
func check(e entry, size int64, head []byte) []string {
	var p []string
	if size > maxSize {
		p = append(p, fmt.Sprintf("%s: %.1f MiB, over the 1 MiB limit (keep large files out of git)", e.path, float64(size)/(1<<20)))
	}
	if inTestdata(e.path) {
		return p
	}
	if kind := binaryKind(head); kind != "" {
		p = append(p, fmt.Sprintf("%s: compiled binary (%s) outside testdata/ (build output belongs in bin/ or out/, which git ignores)", e.path, kind))
	}
	if e.mode == "100755" && !bytes.HasPrefix(head, []byte("#!")) {
		p = append(p, fmt.Sprintf("%s: executable bit on a file that is not a #! script (git update-index --chmod=-x %s)", e.path, e.path))
	}
	return p
}

func inTestdata(path string) bool {
	return slices.Contains(strings.Split(path, "/"), "testdata")
}

// binaryKind names the executable format whose header starts head, or
// returns "".
func binaryKind(head []byte) string {
	if len(head) < 4 {
		return ""
	}
	switch m := binary.BigEndian.Uint32(head); {
	case m == 0x7f454c46:
		return "ELF"
	case m == 0xfeedface, m == 0xfeedfacf, m == 0xcefaedfe, m == 0xcffaedfe, m == 0xcafebabe, m == 0xcafebabf:
		return "Mach-O"
	}
	// PE: the DOS stub's e_lfanew (offset 0x3c) points at "PE\0\0".
	if head[0] == 'M' && head[1] == 'Z' && len(head) >= 0x40 {
		off := int(binary.LittleEndian.Uint32(head[0x3c:]))
		if off+4 <= len(head) && string(head[off:off+4]) == "PE\x00\x00" {
			return "PE"
		}
	}
	return ""
}

// headSize is how much of each file check sees: enough for a PE header.
const headSize = 4096

// index lists the files in git's index of dir.
func index(dir string) ([]entry, error) {
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z", "--stage").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var entries []entry
	for rec := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if rec == "" {
			continue
		}
		// "<mode> <object> <stage>\t<path>"
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("git ls-files: cannot parse %q", rec)
		}
		if f[0] == "120000" || f[0] == "160000" {
			continue // a symlink's target, a submodule's commit
		}
		entries = append(entries, entry{mode: f[0], object: f[1], path: path})
	}
	return entries, nil
}

// contents hands each entry's size and first bytes to fn, read through
// one git cat-file --batch.
func contents(dir string, entries []entry, fn func(e entry, size int64, head []byte)) error {
	cmd := exec.Command("git", "-C", dir, "cat-file", "--batch")
	var in bytes.Buffer
	for _, e := range entries {
		in.WriteString(e.object + "\n")
	}
	cmd.Stdin = &in
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git cat-file: %w", err)
	}
	r := bufio.NewReader(pipe)
	for _, e := range entries {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("git cat-file: %w", err)
		}
		// "<object> blob <size>"
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != e.object {
			return fmt.Errorf("git cat-file: %q for %s", strings.TrimSpace(line), e.path)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("git cat-file: %q for %s", strings.TrimSpace(line), e.path)
		}
		head := make([]byte, min(size, headSize))
		if _, err := io.ReadFull(r, head); err != nil {
			return fmt.Errorf("git cat-file: %s: %w", e.path, err)
		}
		if _, err := r.Discard(int(size - int64(len(head)) + 1)); err != nil { // the rest and the newline
			return fmt.Errorf("git cat-file: %s: %w", e.path, err)
		}
		fn(e, size, head)
	}
	return cmd.Wait()
}
