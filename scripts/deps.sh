#!/usr/bin/env bash
# Installs, from Debian's packages, what a build or test target needs and the
# machine lacks. Idempotent: it only calls apt-get for missing commands.
#   scripts/deps.sh test     ffprobe/ffmpeg for checking output, gcc for cgo
#   scripts/deps.sh arm64    aarch64 cross compilers (cgo, openh264)
#   scripts/deps.sh armv7    armhf cross compilers
#   scripts/deps.sh netlab   ip and nft for the network-namespace NAT labs
set -euo pipefail

need=()
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
	arm64)
		want aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross
		want aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
		;;
	armv7)
		want arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
		want arm-linux-gnueabihf-g++ g++-arm-linux-gnueabihf
		;;
	netlab)
		want ip iproute2
		want nft nftables
		;;
	*) echo "deps.sh: unknown set $what" >&2; exit 2 ;;
	esac
done

command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
	echo "deps.sh: Go 1.26 or newer is required (https://go.dev/dl); not found on PATH" >&2
	exit 1
}

[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
