package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestLoadOverridesDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "camagent.yaml")
	yml := "name: porch\ncapture:\n  width: 640\n  height: 480\n  stall_timeout: 3s\nencode:\n  codec: mjpeg\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "porch" || cfg.Capture.Width != 640 || cfg.Capture.Height != 480 ||
		cfg.Capture.StallTimeout != 3*time.Second || cfg.Encode.Codec != "mjpeg" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.Capture.FPS != 30 || cfg.Encode.Bitrate != 2_000_000 {
		t.Fatalf("defaults lost for absent keys: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "capture:\n  widht: 640\n", "widht"},
		{"wrong type", "capture:\n  width: wide\n", "line 2"},
		{"not yaml", "{{{", "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			_, err := Load(path, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	if _, err := Load(missing, false); err == nil {
		t.Fatal("explicit missing file must be an error")
	}
	cfg, err := Load(missing, true)
	if err != nil || cfg.Listen != Default().Listen {
		t.Fatalf("missing default file should give defaults, got %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Load(empty, false); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestEveryKeyHasAFlag(t *testing.T) {
	cfg := Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	for _, name := range []string{"name", "state-dir", "listen", "log.level", "log.format",
		"capture.device", "capture.format", "capture.width", "capture.height", "capture.fps",
		"capture.stall-timeout", "encode.codec", "encode.bitrate", "encode.keyframe-interval",
		"encode.width", "encode.height"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no flag --%s", name)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Usage == "" {
			t.Errorf("flag --%s has no usage text", f.Name)
		}
	})
}

func TestFlagsOverrideFile(t *testing.T) {
	cfg := Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	err := fs.Parse([]string{"--capture.width=320", "--capture.stall_timeout=5s", "--state-dir=/tmp/x", "--encode.codec=mjpeg", "--capture.fps=15"})
	if err != nil {
		t.Fatal(err)
	}
	fromFile := Default()
	fromFile.Capture.Height = 240
	fromFile.Capture.Width = 999
	if err := Apply(fs, &fromFile); err != nil {
		t.Fatal(err)
	}
	if fromFile.Capture.Width != 320 || fromFile.Capture.Height != 240 ||
		fromFile.Capture.StallTimeout != 5*time.Second || fromFile.Encode.Codec != "mjpeg" || fromFile.Capture.FPS != 15 ||
		fromFile.StateDir != "/tmp/x" {
		t.Fatalf("flags not applied over file: %+v", fromFile)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"odd width", func(c *Config) { c.Capture.Width = 641 }, "capture.width"},
		{"zero fps", func(c *Config) { c.Capture.FPS = 0 }, "capture.fps"},
		{"codec", func(c *Config) { c.Encode.Codec = "vp8" }, "encode.codec"},
		{"format", func(c *Config) { c.Capture.Format = "RGB3" }, "capture.format"},
		{"gop", func(c *Config) { c.Encode.KeyframeInterval = 0 }, "keyframe_interval"},
		{"log", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"half an encode size", func(c *Config) { c.Encode.Width = 640 }, "encode.width"},
		{"odd encode size", func(c *Config) { c.Encode.Width, c.Encode.Height = 641, 480 }, "encode.width"},
		{"status", func(c *Config) { c.Status.Listen = "9433" }, "status.listen"},
		{"gpio line", func(c *Config) { c.Board.PIRLine = -2 }, "board.pir_line"},
		{"no still encodes", func(c *Config) { c.Limits.StillEncodes = 0 }, "limits"},
		{"no rec requests", func(c *Config) { c.Limits.RecRequests = 0 }, "limits"},
		{"per viewer above total", func(c *Config) { c.Limits.ConnsPerViewer, c.Limits.Conns = 8, 4 }, "limits.conns_per_viewer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error naming %s", err, tt.want)
			}
		})
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("name: x\ncapture:\n  width: 640\n"))
	f.Add([]byte("encode: {codec: mjpeg, bitrate: 1}"))
	f.Add([]byte("- a\n- b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if err := Parse(data, &cfg); err == nil {
			_ = cfg.Validate()
		}
	})
}

// TestResolveToken: the relay token comes from exactly one of relay.token,
// relay.token_file and $CAMAGENT_RELAY_TOKEN (issue 11 item 10).
func TestResolveToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "relay.token")
	if err := os.WriteFile(file, []byte("# the camera's token\nfrom-file\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n# none\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       RelayConfig
		env     string
		want    string
		wantErr string
	}{
		{name: "none", want: ""},
		{name: "config", r: RelayConfig{Token: "from-config"}, want: "from-config"},
		{name: "file", r: RelayConfig{TokenFile: file}, want: "from-file"},
		{name: "env", env: " from-env\n", want: "from-env"},
		{name: "file and env", r: RelayConfig{TokenFile: file}, env: "from-env", wantErr: "set only one"},
		{name: "token and file", r: RelayConfig{Token: "x", TokenFile: file}, wantErr: "set only one"},
		{name: "missing file", r: RelayConfig{TokenFile: file + ".missing"}, wantErr: "no such file"},
		{name: "empty file", r: RelayConfig{TokenFile: empty}, wantErr: "no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.ResolveToken(func(k string) string {
				if k != TokenEnv {
					t.Errorf("getenv(%q)", k)
				}
				return tt.env
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
