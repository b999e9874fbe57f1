#!/bin/sh
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT): $1 is TARGET_DIR.
# The state dir must persist across reboots and belong to the service user;
# systemd's StateDirectory= creates and chowns it at start, this makes sure
# it exists (0700) on a read-only-root image too, and lets PID 1 feed the
# hardware watchdog.
set -eu
target=$1
install -d -m 0700 "$target/var/lib/camagent"
conf=$target/etc/systemd/system.conf
if [ -f "$conf" ] && ! grep -q '^RuntimeWatchdogSec=' "$conf"; then
	echo 'RuntimeWatchdogSec=30s' >>"$conf"
fi
