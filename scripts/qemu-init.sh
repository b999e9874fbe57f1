#!/bin/busybox sh
# /init of the qemu-test initramfs (scripts/qemu-test.sh): load vivid and
# virtio-net, bring up QEMU's user network, run the agent from
# /etc/camagent/camagent.yaml and report, on the console, lines the host
# script parses: "CAMAGENT-QEMU: first-frame ..." and "CAMAGENT-QEMU: stats ...".
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp

say() { echo "CAMAGENT-QEMU: $*"; }
uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

for m in $(cat /modules.order); do
	insmod "/lib/modules/$m" || say "insmod $m failed"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
say "modules loaded uptime_ms=$(uptime_ms) devices=$(echo /dev/video*)"

if grep -q 'camagent.init=systemd' /proc/cmdline; then
	# Give the capture nodes to group video as udev's
	# 50-udev-default.rules will (udevd runs under systemd too, with
	# camagent's rules for the LED and the GPIO chip), then let systemd
	# run the real unit.
	chgrp 44 /dev/video* && chmod 0660 /dev/video*
	exec /lib/systemd/systemd
fi

camagent agent --config /etc/camagent/camagent.yaml >/tmp/agent.log 2>&1 &
pid=$!
tail -f /tmp/agent.log &

# cpu_ticks is utime+stime (fields 14 and 15 of /proc/PID/stat, USER_HZ).
stats() {
	echo "uptime_ms=$(uptime_ms)" \
		"rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)" \
		"peak_kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)" \
		"cpu_ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)"
}

while kill -0 $pid 2>/dev/null; do
	if grep -q 'msg=streaming' /tmp/agent.log; then
		say "first-frame $(stats)"
		break
	fi
	usleep 50000
done
while kill -0 $pid 2>/dev/null; do
	say "stats $(stats)"
	sleep 2
done
wait $pid
say "agent-exited status=$?"
poweroff -f
