#!/usr/bin/env bash
# Runs go test over the given packages; packages that fail are run once
# more on their own, and a pass on the second run is reported loudly as
# FLAKY (to be fixed, not ignored) instead of failing the whole build.
# A package that fails twice fails the run.
#   scripts/gotest.sh [go test flags...] -- PACKAGES...
set -uo pipefail
flags=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
shift || true
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test "${flags[@]}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && exit 0
failed=$(awk '$1 == "FAIL" && NF >= 2 && $2 !~ /^\[/ {print $2}' "$log" | sort -u)
if [ -z "$failed" ]; then
	echo "gotest.sh: go test failed without a failing package (build error?)" >&2
	exit "$status"
fi
echo "gotest.sh: rerunning failed packages once: $failed" >&2
# shellcheck disable=SC2086
if go test "${flags[@]}" $failed; then
	echo "gotest.sh: FLAKY (failed once, passed on rerun): $failed" >&2
	exit 0
fi
exit 1
