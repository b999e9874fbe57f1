// Package systemd holds camagent's systemd unit and sysusers.d files; its
// tests check the unit against the agent's needs and score its hardening
// with systemd-analyze.
package systemd
