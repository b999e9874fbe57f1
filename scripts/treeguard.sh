#!/usr/bin/env bash
# Repository guard, first step of .ci/run: no tracked file over 1 MiB, and
# outside testdata/ no compiled binary and no executable bit on a file
# that is not a #! script (internal/tools/treeguard; it needs only Go and
# git, and checks git's index).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
exec go run ./internal/tools/treeguard "$@"
