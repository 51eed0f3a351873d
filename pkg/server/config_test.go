package server_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

func writeFile(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaultRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := server.WriteDefault(&buf); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(writeFile(t, buf.String()))
	if err != nil {
		t.Fatalf("LoadConfig of the default file: %v\n%s", err, buf.String())
	}
	if want := server.DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("default file loads as\n%+v\nwant\n%+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
}

// TestConfigDefaultDocumentsEveryKey guards the rule that every field says
// what it means, its unit and its default.
func TestConfigDefaultDocumentsEveryKey(t *testing.T) {
	var buf bytes.Buffer
	if err := server.WriteDefault(&buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	prev, keys := "", 0
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, " = ") && !strings.HasPrefix(line, "#") {
			keys++
			if !strings.HasPrefix(prev, "#") || !strings.Contains(strings.ToLower(prev), "default") {
				t.Errorf("key %q is not preceded by a comment giving its default (got %q)", line, prev)
			}
		}
		prev = line
	}
	if keys < 10 {
		t.Fatalf("only %d keys in the default file:\n%s", keys, buf.String())
	}
}

func TestConfigPartialFileKeepsDefaults(t *testing.T) {
	cfg, err := server.LoadConfig(writeFile(t, "root = \"/srv/crt\"\n[gc]\nschedule_delay = \"5ms\"\n[image]\nmax_concurrent_downloads = 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := server.DefaultConfig()
	want.Image.MaxConcurrentDownloads = 8
	if cfg.Root != "/srv/crt" || cfg.State != want.State || cfg.GRPC != want.GRPC || cfg.GC.ScheduleDelay.String() != "5ms" || cfg.Image != want.Image {
		t.Fatalf("partial file: %+v", cfg)
	}
}

func TestConfigUnknownKeyIsNamed(t *testing.T) {
	for _, c := range []struct{ file, key string }{
		{"[grpc]\nadress = \"/x.sock\"\n", `"grpc.adress"`},
		{"rot = \"/x\"\n", `"rot"`},
		{"[gc]\npause = 0.5\n", `"gc.pause"`},
		{"[nosuch]\nx = 1\n", `"nosuch`},
		{"[image]\nmax_downloads = 2\n", `"image.max_downloads"`},
		// The top-level snapshotter is the one images are unpacked into.
		{"[image]\nsnapshotter = \"native\"\n", `"image.snapshotter"`},
	} {
		_, err := server.LoadConfig(writeFile(t, c.file))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: error %v, want InvalidArgument", c.file, err)
			continue
		}
		if !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: error %q does not name the key %s", c.file, err, c.key)
		}
	}
}

func TestConfigBadValuesAreNamed(t *testing.T) {
	for _, c := range []struct{ file, key string }{
		{"root = \"relative/dir\"\n", "root"},
		{"snapshotter = \"zfs\"\n", "snapshotter"},
		{"[metrics]\naddress = \"nohostport\"\n", "metrics.address"},
		{"[grpc]\nshutdown_timeout = \"0s\"\n", "grpc.shutdown_timeout"},
		{"[gc]\npause_threshold = 2.0\n", "pause_threshold"},
		{"[gc]\nstartup_delay = \"soon\"\n", "soon"},
		{"[log]\nverbosity = \"high\"\n", "verbosity"},
		{"[image]\nmax_concurrent_downloads = 0\n", "max_concurrent_downloads"},
		{"[image]\nstall_timeout = \"never\"\n", "never"},
	} {
		_, err := server.LoadConfig(writeFile(t, c.file))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: error %v, want InvalidArgument naming %s", c.file, err, c.key)
		}
	}
}

func TestConfigMissingFileIsNotFound(t *testing.T) {
	_, err := server.LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("missing file: %v", err)
	}
}
