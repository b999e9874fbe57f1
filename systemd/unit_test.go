package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/testtier"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have (0 is fully locked down, 10 is unprotected).
const maxExposure = 1.5

// unitFile is a parsed unit: section -> key -> values, in file order
// (keys such as DeviceAllow= may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: malformed line %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestUnitServesTheAgent checks that the hardening leaves the agent what it
// needs: notify and watchdog, its config and state paths, V4L2 devices and
// UDP networking.
func TestUnitServesTheAgent(t *testing.T) {
	u := parseUnit(t, "camagent.service")
	want := map[string]string{
		"Type":            "notify",
		"NotifyAccess":    "main",
		"Restart":         "always",
		"User":            "camagent",
		"StateDirectory":  strings.TrimPrefix(config.Default().StateDir, "/var/lib/"),
		"DevicePolicy":    "closed",
		"NoNewPrivileges": "yes",
	}
	for k, v := range want {
		if got := u.last("Service", k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if u.last("Service", "WatchdogSec") == "" {
		t.Error("no WatchdogSec: a stuck agent would never be restarted")
	}
	exec := u.last("Service", "ExecStart")
	for _, part := range []string{"/usr/bin/camagent agent", "--config " + config.DefaultPath, "--log.format journal"} {
		if !strings.Contains(exec, part) {
			t.Errorf("ExecStart=%q lacks %q", exec, part)
		}
	}
	if !slices.Contains(u["Service"]["DeviceAllow"], "char-video4linux rw") {
		t.Errorf("DeviceAllow=%q: V4L2 capture devices must be allowed", u["Service"]["DeviceAllow"])
	}
	families := strings.Fields(u.last("Service", "RestrictAddressFamilies"))
	for _, f := range []string{"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies=%v lacks %s (QUIC needs UDP, sd_notify and journald a unix socket, "+
				"listing interface addresses for host candidates netlink)", families, f)
		}
	}
	for _, k := range []string{"PrivateNetwork", "PrivateDevices", "IPAddressDeny"} {
		if v := u.last("Service", k); v == "yes" || v == "any" {
			t.Errorf("%s=%s would cut the camera off from its network or devices", k, v)
		}
	}
}

// TestSysusersGivesVideo checks that the service user can open the camera:
// the unit relies on the user's group membership, not SupplementaryGroups=.
func TestSysusersGivesVideo(t *testing.T) {
	data, err := os.ReadFile("camagent.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u camagent `).Match(data) || !regexp.MustCompile(`(?m)^m camagent video$`).Match(data) {
		t.Errorf("camagent.sysusers must create user camagent and add it to group video:\n%s", data)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure runs systemd-analyze's offline security scan of a unit file.
func exposure(t *testing.T, path string) float64 {
	t.Helper()
	testtier.Slow(t, "runs systemd-analyze")
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (scripts/deps.sh systemd installs it)")
	}
	out, err := exec.Command(bin, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", path, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze output:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHardeningScore(t *testing.T) {
	tests := []struct {
		name    string
		unit    string // file contents; "" means the real unit
		wantMax float64
		wantMin float64
	}{
		{name: "camagent.service", wantMax: maxExposure},
		// The same scan must call an unhardened unit exposed, or it
		// proves nothing about ours.
		{name: "bare.service", unit: "[Service]\nExecStart=/usr/bin/camagent agent\n", wantMin: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "camagent.service"
			if tt.unit != "" {
				path = filepath.Join(t.TempDir(), tt.name)
				if err := os.WriteFile(path, []byte(tt.unit), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := exposure(t, path)
			t.Logf("%s: exposure %.1f", tt.name, got)
			if tt.wantMax > 0 && got > tt.wantMax {
				t.Errorf("exposure %.1f, want <= %.1f (run systemd-analyze security --offline=true systemd/%s)", got, tt.wantMax, tt.name)
			}
			if got < tt.wantMin {
				t.Errorf("exposure %.1f, want >= %.1f", got, tt.wantMin)
			}
		})
	}
}

// TestShippedConfigs checks that the configs installed by make install and
// by the Buildroot overlay are valid and agree with the unit's state dir.
func TestShippedConfigs(t *testing.T) {
	dir := "/var/lib/" + parseUnit(t, "camagent.service").last("Service", "StateDirectory")
	for _, path := range []string{"camagent.yaml", "../buildroot/board/camagent/rootfs-overlay/etc/camagent/camagent.yaml"} {
		cfg, err := config.Load(path, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if cfg.StateDir != dir {
			t.Errorf("%s: state_dir %s, but the unit's StateDirectory is %s", path, cfg.StateDir, dir)
		}
	}
}

// TestMakeInstall installs into a DESTDIR and checks that the unit's
// ExecStart names the installed binary and that an existing config is kept.
func TestMakeInstall(t *testing.T) {
	testtier.Slow(t, "runs make install-files")
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dest, bin := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "camagent"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dest, "etc/camagent/camagent.yaml")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("name: mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "-C", "..", "install-files", "DESTDIR="+dest, "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install-files: %v\n%s", err, out)
	}
	unit := filepath.Join(dest, "usr/lib/systemd/system/camagent.service")
	execStart := strings.Fields(parseUnit(t, unit).last("Service", "ExecStart"))
	if len(execStart) == 0 {
		t.Fatal("installed unit has no ExecStart")
	}
	if fi, err := os.Stat(filepath.Join(dest, execStart[0])); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("ExecStart binary %s not installed executable under DESTDIR: %v", execStart[0], err)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr/lib/sysusers.d/camagent.conf")); err != nil {
		t.Error(err)
	}
	if data, _ := os.ReadFile(conf); string(data) != "name: mine\n" {
		t.Errorf("make install overwrote the existing config: %q", data)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr/lib/udev/rules.d/60-camagent.rules")); err != nil {
		t.Error(err)
	}
	// The config may hold the relay token: never world-readable, and
	// (as root, where make install runs systemd-sysusers) group camagent
	// so that the service can read it.
	fi, err := os.Stat(conf)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("installed config mode %v, want 0640", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("systemd-sysusers"); err != nil {
			t.Skip("systemd-sysusers not installed: the camagent group is not created")
		}
		gid := groupID(t, filepath.Join(dest, "etc/group"), "camagent")
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != gid {
			t.Errorf("installed config owner %d:%d, want root:camagent 0:%d", st.Uid, st.Gid, gid)
		}
	}
}

// groupID looks name up in an /etc/group file.
func groupID(t *testing.T, path, name string) uint32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(id)
		}
	}
	t.Fatalf("%s: no group %s", path, name)
	return 0
}

// TestUdevRules checks that the udev rules give the service's group the
// status LED's attributes and the GPIO chips, which the unit's
// DeviceAllow= and ReadWritePaths= then let it use (issue 11 item 9).
func TestUdevRules(t *testing.T) {
	data, err := os.ReadFile("camagent.udev")
	if err != nil {
		t.Fatal(err)
	}
	rules := string(data)
	sysusers, err := os.ReadFile("camagent.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u camagent `).Match(sysusers) {
		t.Fatal("camagent.sysusers creates no camagent user (and group)")
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^SUBSYSTEM=="gpio", KERNEL=="gpiochip\[0-9\]\*", GROUP="camagent", MODE="0660"$`),
		regexp.MustCompile(`(?m)^SUBSYSTEM=="leds", ACTION=="add", .*chgrp camagent brightness trigger && chmod g\+w brightness trigger`),
		regexp.MustCompile(`(?m)^SUBSYSTEM=="leds", ACTION=="change", ENV\{TRIGGER\}=="timer", .*chgrp camagent delay_on delay_off && chmod g\+w delay_on delay_off`),
	} {
		if !want.MatchString(rules) {
			t.Errorf("camagent.udev lacks a rule matching %s", want)
		}
	}
	u := parseUnit(t, "camagent.service")
	if !slices.Contains(u["Service"]["DeviceAllow"], "char-gpiochip rw") {
		t.Error("DeviceAllow= lacks char-gpiochip rw: the udev rule would grant nothing")
	}
	if u.last("Service", "ProtectKernelTunables") != "yes" {
		t.Error("ProtectKernelTunables= is off: only the LED's directory may be writable")
	}
	// The Buildroot image's LED must be the one the unit makes writable.
	cfg, err := config.Load("../buildroot/board/camagent/rootfs-overlay/etc/camagent/camagent.yaml", false)
	if err != nil {
		t.Fatal(err)
	}
	var rw []string
	for _, v := range u["Service"]["ReadWritePaths"] {
		rw = append(rw, strings.Fields(v)...)
	}
	if want := "-/sys/class/leds/" + cfg.Board.LED; cfg.Board.LED != "" && !slices.Contains(rw, want) {
		t.Errorf("ReadWritePaths=%v lacks %s (board.led of the Buildroot image)", rw, want)
	}
	for _, p := range rw {
		if strings.HasPrefix(strings.TrimPrefix(p, "-"), "/sys") && !strings.HasPrefix(strings.TrimPrefix(p, "-"), "/sys/class/leds/") {
			t.Errorf("ReadWritePaths=%s: only LED directories of /sys may be writable", p)
		}
	}
}
