// Command treeguard checks the files git tracks, first thing in CI
// (scripts/treeguard.sh from .ci/run), so that build output and large
// files never slip into the repository again:
//
//   - no tracked file is over 1 MiB, anywhere;
//   - outside testdata/ directories, no file is a compiled executable or
//     object (an ELF, Mach-O or PE header);
//   - outside testdata/ directories, a file with the executable bit
//     starts with #! (a script).
//
// It reads the index (git ls-files, git cat-file), not the work tree, so
// it checks exactly what a commit would hold.
//
//	go run ./internal/tools/treeguard [-C DIR]
package main
