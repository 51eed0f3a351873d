package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSIGTERMStopsCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := newDaemon(t)
			d.start()
			d.ok(nil, "default", "namespaces", "create", "before-stop")
			if code := d.signal(sig); code != 0 {
				t.Fatalf("exit code %d after %v, want 0\n%s", code, sig, d.stderr)
			}
			if _, err := os.Stat(d.address); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("socket after a clean stop: %v, want it removed", err)
			}
			// The database was closed properly: a restart finds the record.
			d.start()
			if out := d.ok(nil, "default", "namespaces", "ls", "-q"); !strings.Contains(out, "before-stop\n") {
				t.Fatalf("namespaces after restart:\n%s", out)
			}
			d.stop()
		})
	}
}

func TestConfigDefaultServes(t *testing.T) {
	d := newDaemon(t)
	out := d.ok(nil, "default", "config", "default")
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	d.ok(nil, "default", "config", "check", path)
	// The file's paths are the system's; the flags override them.
	d.start("--config", path)
	d.ok(nil, "default", "namespaces", "ls")
	d.stop()
	if _, err := os.Stat(filepath.Join(d.root, "meta.db")); err != nil {
		t.Fatalf("--root did not override the file: %v", err)
	}
}

func TestConfigUnknownKeyFailsStart(t *testing.T) {
	d := newDaemon(t)
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[grpc]\nadress = \"/nowhere.sock\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := d.fails(nil, "default", []string{"serve", "--config", path, "--root", d.root, "--state", d.state}, `"grpc.adress"`, "invalid argument", path)
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1", r.code)
	}
	if _, err := os.Stat(d.root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("root created although the config was refused: %v", err)
	}
}
