#!/usr/bin/env bash
# make buildroot-check: checks that buildroot/ is a well-formed BR2_EXTERNAL
# tree (Buildroot itself cannot be fetched here), then builds the package
# the way Buildroot's golang-package does: from a vendored copy of the
# source, offline (GOPROXY=off, -mod=vendor), cgo cross-compiled for arm64.
set -euo pipefail
cd "$(dirname "$0")/.."
br=buildroot
fail=0
bad() { echo "buildroot-check: $*" >&2; fail=1; }

# 1. The files a BR2_EXTERNAL tree and our package need.
for f in external.desc external.mk Config.in package/camagent/Config.in package/camagent/camagent.mk \
	configs/camagent_raspberrypi4_64_defconfig configs/camagent_qemu_aarch64_virt_defconfig \
	board/camagent/rootfs-overlay/etc/camagent/camagent.yaml board/camagent/post-build.sh; do
	[ -f "$br/$f" ] || bad "missing $br/$f"
done
[ -x "$br/board/camagent/post-build.sh" ] || bad "post-build.sh is not executable"

# 2. external.desc's name gives BR2_EXTERNAL_<NAME>_PATH; every path variable
# used must be that one.
name=$(sed -n 's/^name: *\([A-Za-z0-9_]*\) *$/\1/p' "$br/external.desc")
[ -n "$name" ] || bad "external.desc has no 'name: NAME' line"
pathvar=BR2_EXTERNAL_${name}_PATH
others=$(grep -rhoE 'BR2_EXTERNAL_[A-Za-z0-9_]+_PATH' "$br" | sort -u | grep -vx "$pathvar" || true)
[ -z "$others" ] && true || bad "unknown path variables: $others (external.desc names $name)"
grep -q "\$($pathvar)/package/\*/\*.mk" "$br/external.mk" || bad "external.mk does not include package/*/*.mk"

# 3. Each package: Config.in sourced from the top, symbol BR2_PACKAGE_<PKG>,
# every variable of its .mk prefixed <PKG>_, the right infrastructure.
for dir in "$br"/package/*/; do
	pkg=$(basename "$dir")
	up=$(echo "$pkg" | tr 'a-z-' 'A-Z_')
	grep -q "^source \"\$$pathvar/package/$pkg/Config.in\"" "$br/Config.in" || bad "Config.in does not source package/$pkg/Config.in"
	grep -q "^config BR2_PACKAGE_$up\$" "$dir/Config.in" || bad "$pkg/Config.in does not define BR2_PACKAGE_$up"
	mk=$dir/$pkg.mk
	stray=$(grep -oE '^(define +)?[A-Za-z0-9_]+ *(\+|:|\?)?=|^define +[A-Za-z0-9_]+' "$mk" |
		sed -E 's/^define +//; s/ *[+:?]?=$//' | grep -v "^${up}_" || true)
	[ -z "$stray" ] || bad "$pkg.mk sets variables without the ${up}_ prefix: $stray"
	for v in VERSION SITE SITE_METHOD LICENSE GOMOD BUILD_TARGETS INSTALL_BINS; do
		grep -q "^${up}_$v *=" "$mk" || bad "$pkg.mk lacks ${up}_$v"
	done
	tail -n1 "$mk" | grep -qx '\$(eval \$(golang-package))' || bad "$pkg.mk does not end with \$(eval \$(golang-package))"
	gomod=$(sed -n "s/^${up}_GOMOD *= *//p" "$mk")
	[ "$gomod" = "$(go list -m)" ] || bad "${up}_GOMOD=$gomod but go.mod says $(go list -m)"
	for t in $(sed -n "s/^${up}_BUILD_TARGETS *= *//p" "$mk"); do
		[ -d "$t" ] || bad "${up}_BUILD_TARGETS names $t, which does not exist"
	done
	# Files the install hooks take from the source ($(@D) is the repository).
	for f in $(grep -oE '\$\(@D\)/[^ ]+' "$mk" | sed 's|$(@D)/||' | grep -v '^vendor/' | sort -u); do
		[ -e "$f" ] || bad "$pkg.mk installs $f, which does not exist"
	done
	users=$(sed -n "/^define ${up}_USERS/,/^endef/p" "$mk" | sed -n 2p)
	[ "$(echo "$users" | awk '{print NF}')" -ge 9 ] || bad "${up}_USERS needs 9 fields (makeusers syntax): $users"
	echo "$users" | awk '{print $8}' | tr , '\n' | grep -qx video || bad "${up}_USERS does not put the user in group video"
	# The config may hold the relay token: 0640, group of the service user.
	perms=$(sed -n "/^define ${up}_PERMISSIONS/,/^endef/p" "$mk" | sed -n 2p)
	echo "$perms" | awk -v g="$(echo "$users" | awk '{print $3}')" \
		'$1 == "/etc/camagent/camagent.yaml" && $2 == "f" && $3 == "640" && $4 == "root" && $5 == g && NF == 10' |
		grep -q . || bad "${up}_PERMISSIONS does not make the config 0640 root:<the user's group>: $perms"
done

# 4. Defconfigs: paths under the external tree exist, our package is on,
# systemd is the init (the unit is the service), and every symbol of ours
# is defined in a Config.in.
for dc in "$br"/configs/*_defconfig; do
	for p in $(grep -oE "\\\$\\($pathvar\\)/[^ \"]+" "$dc" | sed "s|\$($pathvar)/||" | sort -u); do
		[ -e "$br/$p" ] || bad "$(basename "$dc") references $p, not in $br/"
	done
	grep -qx 'BR2_PACKAGE_CAMAGENT=y' "$dc" || bad "$(basename "$dc") does not enable BR2_PACKAGE_CAMAGENT"
	grep -qx 'BR2_INIT_SYSTEMD=y' "$dc" || bad "$(basename "$dc") does not use systemd"
	grep -qx 'BR2_TOOLCHAIN_BUILDROOT_CXX=y' "$dc" || bad "$(basename "$dc") lacks C++ (openh264)"
	for sym in $(grep -oE '^BR2_PACKAGE_CAMAGENT[A-Z0-9_]*' "$dc"); do
		grep -rqx "config $sym" "$br"/package/*/Config.in || bad "$(basename "$dc") sets undefined $sym"
	done
done

# 5. post-build.sh: valid sh that makes the state dir in a target tree.
sh -n "$br/board/camagent/post-build.sh" || bad "post-build.sh has syntax errors"
target=$(mktemp -d)
trap 'rm -rf "$target" "${src:-}"' EXIT
mkdir -p "$target/etc/systemd" && echo '[Manager]' >"$target/etc/systemd/system.conf"
"$br/board/camagent/post-build.sh" "$target" || bad "post-build.sh failed"
[ "$(stat -c %a "$target/var/lib/camagent" 2>/dev/null)" = 700 ] || bad "post-build.sh did not make /var/lib/camagent 0700"
grep -q '^RuntimeWatchdogSec=' "$target/etc/systemd/system.conf" || bad "post-build.sh did not enable systemd's hardware watchdog"

[ $fail -eq 0 ] || { echo "buildroot-check: FAILED" >&2; exit 1; }
echo "buildroot-check: tree well-formed; building offline from vendored source (as golang-package does)" >&2

# 6. The offline vendored cgo cross build.
src=$(mktemp -d)
git ls-files -z | xargs -0 cp --parents -t "$src"
cp --parents -t "$src" $(git ls-files --others --exclude-standard) 2>/dev/null || true
scripts/vendor.sh "$src" 2>&1 | tail -1
(cd "$src" && GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=1 GOOS=linux GOARCH=arm64 \
	CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
	go build -trimpath -ldflags "-s -w -X main.version=buildroot-check" -o camagent ./cmd/camagent)
file -b "$src/camagent" | grep -q 'ARM aarch64' || bad "offline build did not produce an arm64 binary"
[ $fail -eq 0 ] || exit 1
echo "buildroot-check: PASS (offline vendored arm64 build $(($(stat -c %s "$src/camagent") / 1024)) KiB)"
