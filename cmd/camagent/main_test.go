package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdvertisedAddrs(t *testing.T) {
	tests := []struct {
		listen  string
		want    []string // exact, when the host is specific
		wantErr string
	}{
		{listen: "127.0.0.1:4433", want: []string{"127.0.0.1:4433"}},
		{listen: "[::1]:4433", want: []string{"[::1]:4433"}},
		{listen: "camera.lan:4433", want: []string{"camera.lan:4433"}},
		{listen: "127.0.0.1:0", wantErr: "fixed port"},
		{listen: "nonsense", wantErr: "listen"},
	}
	for _, tt := range tests {
		got, err := advertisedAddrs(tt.listen)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("advertisedAddrs(%q) error %v, want %q", tt.listen, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("advertisedAddrs(%q) = %v, %v; want %v", tt.listen, got, err, tt.want)
		}
	}
	// A wildcard listen address advertises interface addresses, loopback last.
	got, err := advertisedAddrs(":4433")
	if err != nil || len(got) == 0 || !strings.HasSuffix(got[len(got)-1], ":4433") {
		t.Fatalf("advertisedAddrs(:4433) = %v, %v", got, err)
	}
}

// run executes the command line in-process and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("capture:\n  widht: 640\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"viewers", "list", "--config", bad}, "widht"},
		{[]string{"viewers", "list", "--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"viewers", "list", "--config", "/dev/null", "--capture.fps", "0"}, "capture.fps"},
		{[]string{"agent", "--config", "/dev/null", "--encode.codec", "vp9"}, "encode.codec"},
	}
	for _, tt := range tests {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want mention of %q", tt.args, err, tt.want)
		}
	}
}

func TestPairAndViewersCommands(t *testing.T) {
	state := t.TempDir()
	base := []string{"--config", "/dev/null", "--state-dir", state, "--name", "porch", "--listen", "127.0.0.1:4433"}
	out, err := run(t, append([]string{"pair", "--uri-only"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "camagent://pair?") || !strings.Contains(out, "addr=127.0.0.1%3A4433") && !strings.Contains(out, "addr=127.0.0.1:4433") {
		t.Fatalf("pair printed %q", out)
	}
	out, err = run(t, append([]string{"pair"}, base...)...)
	if err != nil || !strings.Contains(out, "Code:") || !strings.Contains(out, "camagent join") {
		t.Fatalf("pair with QR: %v\n%s", err, out)
	}
	out, err = run(t, append([]string{"viewers", "list"}, base...)...)
	if err != nil || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("viewers list: %v\n%s", err, out)
	}
	if _, err := run(t, append([]string{"viewers", "revoke", "nobody"}, base...)...); err == nil {
		t.Fatal("revoking an unknown viewer must fail")
	}
}
