#!/usr/bin/env bash
# Builds the benchmark's control: masque-go v0.6.0's proxy patched to
# build against quic-go v0.65.0, the product's version (v0.65.0 made
# HTTPStreamer.HTTPStream return an error too and requires it after
# WriteHeader; those lines are the patch). Prints the binary's path; pass it as MASQUEINTEROP_CONTROL_BIN
# to BenchmarkSideBySide to separate the quic-go version's share of a
# difference from the relay's own.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
go mod download -json github.com/quic-go/masque-go@v0.6.0 >/dev/null
src=$(go mod download -json github.com/quic-go/masque-go@v0.6.0 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
cp -r "$src" "$work/masque-go" && chmod -R u+w "$work/masque-go"
python3 - "$work/masque-go/proxy.go" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
# quic-go v0.65.0: HTTPStream returns an error too, and must come after
# WriteHeader (a header not written before it is never sent).
old = "\tstr := w.(http3.HTTPStreamer).HTTPStream()\n"
new = ("\tw.Header().Set(http3.CapsuleProtocolHeader, capsuleProtocolHeaderValue)\n"
       "\tw.WriteHeader(http.StatusOK)\n"
       "\tstr, err := w.(http3.HTTPStreamer).HTTPStream()\n"
       "\tif err != nil {\n\t\ts.mx.Unlock()\n\t\tconn.Close()\n\t\treturn err\n\t}\n")
late = "\tw.Header().Set(http3.CapsuleProtocolHeader, capsuleProtocolHeaderValue)\n\tw.WriteHeader(http.StatusOK)\n\n\tvar wg"
assert old in s and late in s
s = s.replace(late, "\tvar wg").replace(old, new)
open(p, "w").write(s)
PY
mkdir "$work/control"
cp "$here/control/main.go.txt" "$work/control/main.go"
cat >"$work/control/go.mod" <<MOD
module control

go 1.26.0

require (
	github.com/quic-go/masque-go v0.6.0
	github.com/quic-go/quic-go v0.65.0
	github.com/yosida95/uritemplate/v3 v3.0.2
)

replace github.com/quic-go/masque-go => $work/masque-go
MOD
(cd "$work/control" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && go build -o "$work/masque-go-proxy-quic-go-v0.65" .)
echo "$work/masque-go-proxy-quic-go-v0.65"
