#!/usr/bin/env bash
# Vendors the module for offline builds (Buildroot's golang-package builds
# with -mod=vendor and no network): go mod vendor, then openh264's bundled
# static libraries and headers, which go mod vendor leaves out because
# their directories hold no Go files. Run in the repository root (or the
# copy Buildroot builds from).
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
go mod vendor
mod=github.com/pion/mediadevices
src=$(go list -mod=mod -m -f '{{.Dir}}' $mod)
for d in lib include; do
	rm -rf "vendor/$mod/pkg/codec/openh264/$d"
	cp -r "$src/pkg/codec/openh264/$d" "vendor/$mod/pkg/codec/openh264/$d"
	chmod -R u+w "vendor/$mod/pkg/codec/openh264/$d"
done
echo "vendor.sh: vendor/ ready ($(du -sh vendor | cut -f1))" >&2
