#!/usr/bin/env bash
# make qemu-test: boot the arm64 build under qemu-system-aarch64 (TCG) with
# Debian's arm64 kernel and the vivid virtual camera, run the agent on
# /dev/video0 (YUYV, software H.264), watch it from the host through QEMU's
# user-mode NAT, write out/qemu.mp4, check it with ffprobe, and print a
# one-line summary last.
#
# QEMU_INIT=systemd (make qemu-systemd-test) boots Debian's arm64 systemd as
# PID 1 instead and runs the agent as systemd/camagent.service, installed by
# `make install-files`: the hardened unit itself must then open vivid and
# serve the viewer, and it only counts as started after READY=1. That run
# also has a relay: `camagent relay` on the host (reached from the guest at
# QEMU's 10.0.2.2), the guest camera registers with it using a token file,
# and the host viewer watches through it (--via relay). The board has a
# status LED and a GPIO chip (a gpio-leds node on QEMU's PL061, added to
# the device tree), which udevd and the shipped udev rules hand to the
# camagent group; the unit must neither restart nor log an LED failure.
#
# The camera's state dir (its key and the paired viewer) is made on the host
# by the real pairing flow against a short-lived host agent listening on the
# same loopback port that QEMU later forwards to the guest: the guest then
# boots as an already provisioned camera, which is what a flashed board is.
set -euo pipefail
cd "$(dirname "$0")/.."

init=${QEMU_INIT:-busybox}
port=${QEMU_PORT:-44533}
status_port=${QEMU_STATUS_PORT:-$((port + 1))}
relay_port=${QEMU_RELAY_PORT:-$((port + 2))}
relay_metrics_port=${QEMU_RELAY_METRICS_PORT:-$((port + 3))}
width=${QEMU_WIDTH:-640}
height=${QEMU_HEIGHT:-360}
fps=${QEMU_FPS:-25}
seconds=${QEMU_SECONDS:-10}
# TCG emulation runs at whatever speed the host has left: a quiet 2-core host
# delivers 190-250 of the 250 frames, a loaded one about half. A quarter of
# the rate still proves capture, encode and streaming work; the summary line
# reports the real figure.
min_frames=${QEMU_MIN_FRAMES:-$((seconds * fps / 4))}
cache=${CAMAGENT_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/camagent-qemu}
work=out/qemu
host_bin=bin/camagent
guest_bin=bin/camagent-linux-arm64
start=$(date +%s)

log() { echo "qemu-test: $*" >&2; }
die() { log "$*"; exit 1; }

rm -rf "$work" out/qemu.mp4
mkdir -p "$work" "$cache"

# 1. Kernel and busybox: Debian's arm64 packages, fetched once into the cache.
fetch_debs() {
	local kpkg
	kpkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-6/ {print $2; exit}')
	[ -n "$kpkg" ] || die "cannot resolve linux-image-arm64:arm64 (is the arm64 architecture added?)"
	kpkg=${kpkg%:arm64}
	if [ ! -f "$cache/$kpkg.stamp" ]; then
		log "fetching $kpkg and busybox-static:arm64"
		rm -rf "$cache/k" "$cache/bb" "$cache"/*.deb
		(cd "$cache" && apt-get download "$kpkg:arm64" busybox-static:arm64 >/dev/null 2>&1) ||
			die "apt-get download $kpkg:arm64 busybox-static:arm64 failed"
		dpkg -x "$cache"/linux-image-*_arm64.deb "$cache/k"
		dpkg -x "$cache"/busybox-static_*_arm64.deb "$cache/bb"
		# The .deb leaves modules.dep to its postinst: make it here.
		depmod -b "$cache/k" "$(basename "$(ls -d "$cache"/k/lib/modules/*)")"
		touch "$cache/$kpkg.stamp"
	fi
	kver=$(basename "$(ls -d "$cache"/k/lib/modules/*)")
	moddir=$cache/k/lib/modules/$kver
	vmlinuz=$cache/k/boot/vmlinuz-$kver
}

# systemd:arm64 and the libraries its binaries link, for QEMU_INIT=systemd.
systemd_debs=(systemd libsystemd-shared libacl1 libapparmor1 libargon2-1 libaudit1 libblkid1 libc6
	libcap-ng0 libcap2 libcrypt1 libcryptsetup12 libdevmapper1.02.1 libfdisk1 libgcc-s1 libgcrypt20
	libgpg-error0 libip4tc2 libjson-c5 libkmod2 liblz4-1 liblzma5 libmount1 libp11-kit0 libpam0g
	libpcre2-8-0 libseccomp2 libselinux1 libssl3 libsystemd0 libudev1 libuuid1 libzstd1 libffi8 libstdc++6
	udev)

fetch_systemd() {
	# The stamp names the package list, so a longer list fetches again.
	local stamp
	stamp=$cache/sd/stamp-$(echo "${systemd_debs[*]}" | md5sum | cut -c1-8)
	[ -f "$stamp" ] && return
	log "fetching systemd:arm64 and its libraries"
	rm -rf "$cache/sd" && mkdir -p "$cache/sd"
	(cd "$cache/sd" && apt-get download "${systemd_debs[@]/%/:arm64}" >/dev/null 2>&1) ||
		die "apt-get download of systemd:arm64 failed"
	touch "$stamp"
}

# install_systemd turns the initramfs into a systemd system running the
# real unit, with udevd and the shipped udev rules. `make install-files`
# creates the camagent user (systemd-sysusers --root, as a package's
# install would) and makes the config 0640 root:camagent; the relay token
# file gets the same.
install_systemd() {
	local root=$1 deb
	for deb in "$cache"/sd/*.deb; do dpkg -x "$deb" "$root"; done
	local bindir=$work/guest-bin
	mkdir -p "$bindir" && cp "$guest_bin" "$bindir/camagent"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nvideo:x:44:\n' >"$root/etc/group"
	make -s install-files DESTDIR="$(pwd)/$root" BIN="$bindir" >/dev/null 2>"$work/install.log" ||
		{ cat "$work/install.log" >&2; die "make install-files failed"; }
	local gid
	gid=$(awk -F: '$1 == "camagent" {print $3}' "$root/etc/group")
	[ -n "$gid" ] || die "make install-files created no camagent group (needs root and systemd-sysusers)"
	install -m 0640 -o 0 -g "$gid" "$work/relay.token" "$root/etc/camagent/relay.token"
	printf 'NAME=camagent-qemu\nID=camagent\n' >"$root/etc/os-release"
	: >"$root/etc/machine-id"
	mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
	ln -sf /usr/lib/systemd/system/camagent.service "$root/etc/systemd/system/multi-user.target.wants/"
	ln -sf /usr/lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
	cp scripts/qemu-report.sh "$root/usr/bin/camagent-qemu-report"
	chmod 0755 "$root/usr/bin/camagent-qemu-report"
	cat >"$root/etc/systemd/system/camagent-qemu-report.service" <<'UNIT'
[Unit]
Description=qemu-test: report camagent.service's state on the console
[Service]
ExecStart=/usr/bin/camagent-qemu-report
StandardOutput=tty
TTYPath=/dev/console
UNIT
	ln -sf ../camagent-qemu-report.service "$root/etc/systemd/system/multi-user.target.wants/"
}

# modules_for prints the modules (paths relative to $moddir) that loading
# each named module needs, dependencies first, each once (modules.dep lists
# a module's dependencies so that loading them in reverse order works).
modules_for() {
	local m line deps i
	for m in "$@"; do
		line=$(grep -E "(^|/)$m\.ko:" "$moddir/modules.dep") || die "module $m not in $kver"
		read -r -a deps <<<"${line#*:}"
		for ((i = ${#deps[@]} - 1; i >= 0; i--)); do echo "${deps[i]}"; done
		echo "${line%%:*}"
	done | awk '!seen[$0]++'
}

# 2. Pair a viewer with a host agent that has the camera's future identity.
provision() {
	local cam=$work/camera-state viewer=$work/viewer-state alog=$work/host-agent.log
	local flags=(--config /dev/null --name qemu-camera --state-dir "$cam" --listen "127.0.0.1:$port"
		--capture.device test --capture.width 320 --capture.height 240 --capture.fps 10)
	# With a relay, the offer carries it, so the viewer knows where to
	# locate the camera (the token comes from the environment).
	[ -z "$relay_url" ] || flags+=(--relay.urls "$relay_url")
	CAMAGENT_RELAY_TOKEN=$relay_token "$host_bin" agent "${flags[@]}" 2>"$alog" &
	local pid=$!
	for _ in $(seq 150); do
		grep -q 'msg=streaming' "$alog" && break
		kill -0 $pid 2>/dev/null || { cat "$alog" >&2; die "host agent exited"; }
		sleep 0.1
	done
	local uri
	uri=$("$host_bin" pair "${flags[@]}" --uri-only)
	"$host_bin" join "$uri" --state-dir "$viewer" --as qemu-host-viewer >&2
	kill $pid
	wait $pid 2>/dev/null || true
	rm -f "$cam"/*.lock
}

# 3. The initramfs: busybox, the agent with its shared libraries, vivid and
# virtio-net with their dependencies, the provisioned state, and /init.
build_initramfs() {
	local root=$work/root lib
	mkdir -p "$root"/{bin,sbin,lib,proc,sys,dev,tmp,etc/camagent,var/lib,usr/bin,lib/modules}
	cp "$cache/bb/bin/busybox" "$root/bin/busybox"
	cp "$guest_bin" "$root/usr/bin/camagent"
	for lib in $(aarch64-linux-gnu-readelf -d "$guest_bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
		cp -L "/usr/aarch64-linux-gnu/lib/$lib" "$root/lib/" || die "no arm64 $lib"
	done
	: >"$root/modules.order"
	local m
	for m in $(modules_for failover net_failover virtio_net virtio_pci vivid leds-gpio ledtrig-timer); do
		cp "$moddir/$m" "$root/lib/modules/"
		basename "$m" >>"$root/modules.order"
	done
	cp -a "$work/camera-state" "$root/var/lib/camagent"
	cat >"$root/etc/camagent/camagent.yaml" <<EOF
name: qemu-camera
state_dir: /var/lib/camagent
listen: ":4433"
log: {level: info, format: text}
capture: {device: /dev/video0, format: YUYV, width: $width, height: $height, fps: $fps}
encode: {codec: h264, bitrate: 1000000, keyframe_interval: $fps}
status: {listen: "0.0.0.0:9433"} # reached through QEMU's hostfwd, so not loopback
EOF
	if [ "$init" = systemd ]; then
		# The host's relay as the guest reaches it (QEMU's user network
		# maps 10.0.2.2 to the host's loopback), the token from a file;
		# the LED and the PIR line on QEMU's PL061 (see board_dtb).
		cat >>"$root/etc/camagent/camagent.yaml" <<EOF
relay: {urls: ["${relay_url/127.0.0.1/10.0.2.2}"], token_file: /etc/camagent/relay.token}
board: {led: ACT, pir_chip: gpiochip0, pir_line: 4}
EOF
	fi
	cp scripts/qemu-init.sh "$root/init"
	[ "$init" = systemd ] && install_systemd "$root"
	chmod 0755 "$root/init" "$root/bin/busybox" "$root/usr/bin/camagent"
	# As root, keep owners (the config and token are root:camagent);
	# otherwise everything becomes root's.
	local owner=(-R 0:0)
	[ "$(id -u)" -eq 0 ] && owner=()
	(cd "$root" && find . | cpio -o -H newc "${owner[@]}" --quiet | gzip -1) >"$work/initramfs.cpio.gz"
}

marker() { grep -a "CAMAGENT-QEMU: $1" "$work/console.log" 2>/dev/null | tr -d "\r" | tail -1; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# The relay on the host (systemd run): token from a file, a target
# override for the loopback viewer if the relay has one.
relay_url= relay_token= relay_pid=
start_relay() {
	relay_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	(umask 077 && echo "$relay_token" >"$work/relay.token")
	local args=(relay --listen "127.0.0.1:$relay_port" --state-dir "$work/relay-state"
		--token-file "$work/relay.token" --metrics "127.0.0.1:$relay_metrics_port"
		# QEMU's user network hands the guest's packets to the host's
		# loopback, and the viewer is there too: the relay's target policy
		# refuses loopback unless told otherwise.
		--allow-target 127.0.0.1/32)
	"$host_bin" "${args[@]}" >"$work/relay.out" 2>"$work/relay.log" &
	relay_pid=$!
	for _ in $(seq 100); do
		relay_url=$(sed -n 's/^relay url: //p' "$work/relay.out")
		[ -n "$relay_url" ] && break
		kill -0 $relay_pid 2>/dev/null || { cat "$work/relay.log" >&2; die "relay exited"; }
		sleep 0.1
	done
	[ -n "$relay_url" ] || die "relay printed no url"
	log "relay $relay_url"
}

# board_dtb is QEMU's own device tree plus a status LED (gpio-leds, as on a
# Pi: /sys/devices/platform/leds/leds/ACT) on line 5 of its PL061 GPIO chip.
board_dtb() {
	qemu-system-aarch64 -M "virt,dumpdtb=$work/virt.dtb" -cpu cortex-a72 -smp 2 -m 1024 -display none -nic none >/dev/null 2>&1 ||
		die "cannot dump QEMU's device tree"
	local phandle
	dtc -q -I dtb -O dts "$work/virt.dtb" >"$work/virt.dts"
	phandle=$(awk '/pl061@/ {p = 1} p && /phandle/ {gsub(/[^0-9a-fx]/, "", $3); print $3; exit}' "$work/virt.dts")
	[ -n "$phandle" ] || die "no PL061 in QEMU's device tree"
	cat >>"$work/virt.dts" <<EOF
/ {
	leds {
		compatible = "gpio-leds";
		act {
			label = "ACT";
			gpios = <$phandle 5 0>;
		};
	};
};
EOF
	dtc -q -I dts -O dtb -o "$work/board.dtb" "$work/virt.dts" || die "dtc failed"
}

fetch_debs
qemu_extra=()
# The relay must never outlive the run: it would keep its port, and it
# inherits the file descriptors of whatever runs this script (flock's lock
# on the shared heavy-job lock, for one).
stop_relay() {
	[ -z "$relay_pid" ] && return
	kill $relay_pid 2>/dev/null || true
	wait $relay_pid 2>/dev/null || true
	relay_pid=
}
trap stop_relay EXIT
if [ "$init" = systemd ]; then
	fetch_systemd
	start_relay
	board_dtb
	qemu_extra=(-dtb "$work/board.dtb")
fi
provision
build_initramfs
log "initramfs $(du -k "$work/initramfs.cpio.gz" | cut -f1) KiB; booting $kver"

boot_start=$(date +%s.%N)
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -no-reboot \
	-display none -monitor none -serial "file:$work/console.log" \
	-kernel "$vmlinuz" -initrd "$work/initramfs.cpio.gz" \
	-append "console=ttyAMA0 rdinit=/init panic=-1 quiet camagent.init=$init" \
	-netdev "user,id=n0,hostfwd=udp:127.0.0.1:$port-:4433,hostfwd=tcp:127.0.0.1:$status_port-:9433" \
	-device virtio-net-pci,netdev=n0,romfile= "${qemu_extra[@]}" </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!
trap 'kill $qemu_pid 2>/dev/null || true; wait $qemu_pid 2>/dev/null || true; stop_relay' EXIT

for _ in $(seq 1800); do # up to 180 s for boot and the first encoded frame
	[ -n "$(marker first-frame)" ] && break
	[ -n "$(marker agent-exited)" ] && break
	kill -0 $qemu_pid 2>/dev/null || break
	sleep 0.1
done
first=$(marker first-frame)
if [ -z "$first" ]; then
	tail -50 "$work/console.log" >&2
	die "the guest agent never streamed (console: $work/console.log)"
fi
host_first=$(echo "$(date +%s.%N) - $boot_start" | bc)
log "guest streaming: $first"

via=(--addr "127.0.0.1:$port")
if [ "$init" = systemd ]; then
	# Watch through the relay: wait for the guest's registration first.
	for _ in $(seq 600); do
		grep -aq 'registered with relay' "$work/console.log" && break
		sleep 0.1
	done
	grep -aq 'registered with relay' "$work/console.log" ||
		{ tail -30 "$work/console.log" >&2; die "the guest never registered with the relay"; }
	via=(--via relay)
fi
"$host_bin" view qemu-camera --state-dir "$work/viewer-state" "${via[@]}" \
	-o out/qemu.mp4 --duration "${seconds}s" --quiet --summary "$work/summary.json" 2>"$work/view.log" ||
	{ cat "$work/view.log" >&2; tail -30 "$work/console.log" >&2; die "viewer failed"; }
# The guest's status endpoint: healthy, frames counted, the board model
# read from QEMU's device tree, one viewer served.
curl -fsS "http://127.0.0.1:$status_port/metrics" >"$work/metrics.txt" || die "status endpoint unreachable"
curl -fsS "http://127.0.0.1:$status_port/healthz" >"$work/healthz.json" || die "/healthz not healthy: $(cat "$work/healthz.json")"
for want in 'camagent_healthy 1' 'camagent_board_info{model="linux,dummy-virt"} 1' 'camagent_viewers_total 1'; do
	grep -qF "$want" "$work/metrics.txt" || die "guest /metrics lacks '$want' ($work/metrics.txt)"
done
sleep 2.5 # one more guest stats line covering the viewing time
stats=$(marker stats)
if [ "$init" = systemd ]; then
	curl -fsS "http://127.0.0.1:$relay_metrics_port/metrics" >"$work/relay-metrics.txt" || die "relay metrics unreachable"
fi
kill $qemu_pid 2>/dev/null || true
wait $qemu_pid 2>/dev/null || true
stop_relay
trap - EXIT

probe=$(ffprobe -v error -count_frames -select_streams v:0 \
	-show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 out/qemu.mp4)
IFS=, read -r codec w h frames <<<"$probe"
log "ffprobe: $probe (codec,width,height,frames)"
[ "$codec" = h264 ] && [ "$w" = "$width" ] && [ "$h" = "$height" ] ||
	die "out/qemu.mp4 is $codec ${w}x$h, want h264 ${width}x$height"
[ "$frames" -ge "$min_frames" ] || die "out/qemu.mp4 has $frames frames, want at least $min_frames"

boot_ms=$(echo "$first" | field uptime_ms)
rss_kb=$(echo "$stats" | field rss_kb)
peak_kb=$(echo "$stats" | field peak_kb)
ticks=$(echo "$stats" | field cpu_ticks)
up_ms=$(echo "$stats" | field uptime_ms)
ticks0=$(echo "$first" | field cpu_ticks)
# CPU while streaming, from the first frame to the last stats line, as a
# share of one emulated core (USER_HZ is 100).
cpu=$(echo "scale=1; ($ticks - $ticks0) * 10 * 100 / ($up_ms - $boot_ms)" | bc)
size_kb=$(($(stat -c %s "$guest_bin") / 1024))
extra=
if [ "$init" = systemd ]; then
	unit=$(marker unit)
	echo "$unit" | grep -q 'ActiveState=active' || die "camagent.service not active: $unit"
	echo "$unit" | grep -q 'NRestarts=0' || die "camagent.service restarted: $unit"
	log "systemd: $unit"
	# The relay carried the video: the viewer connected to the relay's
	# public address and received bytes on the relayed path.
	relay_bytes=$(sed -n 's/.*"bytes_relay":\([0-9]*\).*/\1/p' "$work/summary.json")
	direct_bytes=$(sed -n 's/.*"bytes_direct":\([0-9]*\).*/\1/p' "$work/summary.json")
	from_camera=$(sed -n 's/^camagent_relay_bytes_total{direction="from_camera"} //p' "$work/relay-metrics.txt")
	path=$(sed -n 's/.*"path":"\([a-z]*\)".*/\1/p' "$work/summary.json")
	log "viewer: path $path, bytes relay=$relay_bytes direct=$direct_bytes; relay forwarded $from_camera bytes from the camera"
	[ "${relay_bytes:-0}" -gt 0 ] && [ "${from_camera:-0}" -gt 0 ] ||
		die "no video through the relay ($work/summary.json, $work/relay-metrics.txt)"
	# The hardware: LED and GPIO chip handed over by the udev rules and
	# used under the unit; no hardware or host-candidate failure logged.
	board=$(marker board)
	log "board: $board"
	echo "$board" | grep -q 'gpiochip0=root:camagent:660' || die "udev did not give /dev/gpiochip0 to camagent: $board"
	echo "$board" | grep -Eq 'led_trigger=(heartbeat|none led_brightness=[1-9])' || die "the agent did not drive the LED: $board"
	for bad in 'PIR sensor unavailable' 'no host candidates' 'status endpoint unavailable'; do
		! grep -aq "$bad" "$work/console.log" || die "the agent logged '$bad' under the unit ($work/console.log)"
	done
	# The LED may fail once if the agent starts before udev has handed
	# it over; it must then work again.
	if grep -aq 'status LED failed' "$work/console.log"; then
		grep -aq 'status LED works again' "$work/console.log" || die "the status LED failed under the unit ($work/console.log)"
	fi
	extra="; systemd: NRestarts=0; relay: viewer --via relay ending on the $path path, ${relay_bytes} bytes relayed, ${direct_bytes:-0} direct, the relay forwarded ${from_camera} bytes from the camera; LED $(echo "$board" | sed -n 's/.*\(led_trigger=[^ ]*\).*/\1/p'), gpiochip0 root:camagent 0660, PIR line held"
fi
echo "qemu-test: PASS ($init) out/qemu.mp4 h264 ${w}x$h $frames frames in ${seconds}s;" \
	"arm64 binary ${size_kb} KiB; guest boot to first frame ${boot_ms} ms (host ${host_first%.*} s);" \
	"agent RSS $((rss_kb / 1024)) MiB (peak $((peak_kb / 1024)) MiB), CPU ${cpu}% of one core; total $(($(date +%s) - start)) s$extra"
