#!/usr/bin/env bash
# Installs, from Debian's packages, what a build or test target needs and the
# machine lacks. Idempotent: it only calls apt-get for missing commands.
#   scripts/deps.sh test     ffprobe/ffmpeg for checking output, gcc for cgo
#   scripts/deps.sh netlab   nft and ip for the network-namespace labs
#   scripts/deps.sh arm64    aarch64 cross compilers (cgo, openh264)
#   scripts/deps.sh armv7    armhf cross compilers
#   scripts/deps.sh qemu     qemu-system-aarch64, depmod, cpio, dtc, bc, and the arm64
#                            architecture (for apt-get download of kernel/busybox)
#   scripts/deps.sh systemd  systemd-analyze (unit hardening score)
#   scripts/deps.sh lint     staticcheck $STATICCHECK_VERSION, with go install
#                            into bin/tools (not from Debian)
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
STATICCHECK_VERSION=v0.8.2

need=()
add_arm64=
lint=
want() { # want COMMAND PACKAGE...
	local cmd=$1; shift
	command -v "$cmd" >/dev/null 2>&1 || need+=("$@")
}

for what in "$@"; do
	case $what in
	test)
		want ffprobe ffmpeg
		want gcc gcc libc6-dev
		want g++ g++
		want make make
		;;
	netlab)
		want nft nftables
		want ip iproute2
		want ffprobe ffmpeg
		;;
	arm64)
		want aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross
		want aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
		;;
	armv7)
		want arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
		want arm-linux-gnueabihf-g++ g++-arm-linux-gnueabihf
		;;
	qemu)
		want qemu-system-aarch64 qemu-system-arm
		want depmod kmod
		want cpio cpio
		want dtc device-tree-compiler
		want bc bc
		want ffprobe ffmpeg
		dpkg --print-foreign-architectures | grep -qx arm64 || add_arm64=1
		;;
	systemd)
		want systemd-analyze systemd
		;;
	lint)
		lint=1
		;;
	*) echo "deps.sh: unknown set $what" >&2; exit 2 ;;
	esac
done

command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
	echo "deps.sh: Go 1.26 or newer is required (https://go.dev/dl); not found on PATH" >&2
	exit 1
}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ -n "$add_arm64" ]; then
	echo "deps.sh: adding the arm64 architecture" >&2
	$sudo dpkg --add-architecture arm64
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "deps.sh: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
	$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "$lint" ]; then
	tools="$(cd "$(dirname "$0")/.." && pwd)/bin/tools"
	if ! "$tools/staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
		echo "deps.sh: installing staticcheck $STATICCHECK_VERSION into bin/tools" >&2
		GOBIN=$tools go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	fi
fi
