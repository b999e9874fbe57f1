#!/usr/bin/env bash
# Runs one system target of `make test` (a lab, QEMU, the power-loss test).
# If it fails and the Makefile lists it in KNOWN_FLAKY (the reason comes in
# FLAKY_REASON), it runs once more and the retry is appended to
# out/flaky.txt (or FLAKY_RECORD) in the format of internal/tools/gotest;
# a target that is not listed fails on its first failure. Flakes are
# recorded, never hidden.
#   FLAKY_REASON='...' scripts/retry.sh NAME COMMAND...
set -uo pipefail
name=$1
shift
record=${FLAKY_RECORD:-out/flaky.txt}
reason=${FLAKY_REASON:-}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
first=${PIPESTATUS[0]}
[ "$first" -eq 0 ] && exit 0
if [ -z "$reason" ]; then
	echo "retry.sh: $name failed (exit $first) and is not in the Makefile's KNOWN_FLAKY list: no retry" >&2
	exit "$first"
fi
echo "retry.sh: $name failed (exit $first); known flaky ($reason): one retry, recorded in $record" >&2
failure="exit $first"
# The last line that says something: not blank, not make's own.
last=$(grep -Ev '^[[:space:]]*$|^make(\[[0-9]+\])?: ' "$log" | tail -n 1 | cut -c1-200)
[ -z "$last" ] || failure="$failure: $last"
"$@"
rc=$?
outcome=pass
[ "$rc" -eq 0 ] || outcome=fail
quote() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
mkdir -p "$(dirname "$record")"
printf 'time=%s kind=target target=%s attempt=2 outcome=%s reason=%s failure=%s\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$outcome" "$(quote "$reason")" "$(quote "$failure")" >>"$record"
exit "$rc"
