#!/bin/sh
# qemu-test with QEMU_INIT=systemd: camagent-qemu-report.service runs this
# to print, on the console, the lines scripts/qemu-test.sh parses. The unit
# counts as active only after the agent's READY=1 (Type=notify), which it
# sends after the first encoded frame.
say() { echo "CAMAGENT-QEMU: $*"; }
uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
stats() {
	pid=$(systemctl show -P MainPID camagent.service)
	echo "uptime_ms=$(uptime_ms)" \
		"rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)" \
		"peak_kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)" \
		"cpu_ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)"
}
unit() {
	echo "$(systemctl show -p ActiveState -p SubState -p NRestarts -p WatchdogUSec -p StatusText -p User camagent.service | tr '\n' ' ')"
}
while [ "$(systemctl is-active camagent.service)" != active ]; do
	case $(systemctl is-active camagent.service) in failed)
		say "agent-exited $(unit)"
		journalctl -u camagent.service --no-pager -n 30 -o short-monotonic
		exit 1 ;;
	esac
	sleep 0.05
done
say "first-frame $(stats)"
journalctl -f -u camagent.service --no-pager -o short-monotonic &
# The status LED and the GPIO chip: what the agent set, and the owners
# udev's rules (60-camagent.rules) gave them.
board() {
	led=/sys/class/leds/ACT
	trig=$(sed -n 's/.*\[\([^]]*\)\].*/\1/p' $led/trigger 2>/dev/null)
	echo "led_trigger=${trig:-missing} led_brightness=$(cat $led/brightness 2>/dev/null)" \
		"led_attrs=$(stat -L -c %G:%a $led/brightness $led/trigger 2>/dev/null | tr '\n' ,)" \
		"gpiochip0=$(stat -c %U:%G:%a /dev/gpiochip0 2>/dev/null)"
}
while :; do
	say "stats $(stats)"
	say "unit $(unit)"
	say "board $(board)"
	sleep 2
done
