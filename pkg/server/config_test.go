package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/internal/configdoc"
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
	comment, keys := "", 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			comment += line + "\n"
			continue
		}
		if strings.Contains(line, " = ") {
			keys++
			if !strings.Contains(strings.ToLower(comment), "default") {
				t.Errorf("key %q is not preceded by a comment giving its default (got %q)", line, comment)
			}
		}
		comment = ""
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
		{"[cri]\nsandbox_image = \"Not A Reference!\"\n", "cri.sandbox_image"},
		{"[cri.runtimes.x]\nbinary = \"relative/runc\"\n", "cri.runtimes.x.binary"},
		{"[cri.runtimes.\"a/b\"]\n", "cri.runtimes.a/b.binary"},
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

// durationKeys returns the dotted key of every gc.Duration field of t.
func durationKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case key == "" || key == "-":
		case f.Type == reflect.TypeOf(gc.Duration(0)):
			keys = append(keys, prefix+key)
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, durationKeys(f.Type, prefix+key+".")...)
		}
	}
	return keys
}

// TestConfigBareNumberDurationIsRefused guards every duration key against
// a bare number, which the decoder took for nanoseconds:
// `shutdown_timeout = 10` cut every call 10ns into a stop.
func TestConfigBareNumberDurationIsRefused(t *testing.T) {
	keys := durationKeys(reflect.TypeOf(server.Config{}), "")
	if len(keys) < 4 {
		t.Fatalf("duration keys found: %v", keys)
	}
	for _, key := range keys {
		section, name, _ := strings.Cut(key, ".")
		for _, v := range []string{"10", "1.5", "-3"} {
			file := fmt.Sprintf("[%s]\n%s = %s\n", section, name, v)
			_, err := server.LoadConfig(writeFile(t, file))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"`+key+`"`) || !strings.Contains(err.Error(), `"10s"`) {
				t.Errorf("%q: error %v, want InvalidArgument naming %q and showing \"10s\"", file, err, key)
			}
		}
		// The string form is accepted.
		if _, err := server.LoadConfig(writeFile(t, fmt.Sprintf("[%s]\n%s = \"10s\"\n", section, name))); err != nil {
			t.Errorf("%s = \"10s\": %v", key, err)
		}
	}
}

func TestConfigSocketPathTooLong(t *testing.T) {
	long := "/run/" + strings.Repeat("s", server.MaxSocketPath-len("/run/")+1)
	_, err := server.LoadConfig(writeFile(t, fmt.Sprintf("[grpc]\naddress = %q\n", long)))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "grpc.address") || !strings.Contains(err.Error(), "108 bytes") {
		t.Fatalf("a %d-byte socket path: %v, want InvalidArgument naming grpc.address and its length", len(long), err)
	}
	ok := long[:server.MaxSocketPath]
	if _, err := server.LoadConfig(writeFile(t, fmt.Sprintf("[grpc]\naddress = %q\n", ok))); err != nil {
		t.Fatalf("a %d-byte socket path: %v", len(ok), err)
	}
}

// TestConfigDocsAreGenerated guards the one source of the config docs:
// the table `config default` prints is the doc comments of the fields.
func TestConfigDocsAreGenerated(t *testing.T) {
	want, err := configdoc.Generate(filepath.Join("..", ".."), reflect.TypeOf(server.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(configdoc.GeneratedFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the doc comments of Config's fields: run go generate ./pkg/server", configdoc.GeneratedFile)
	}
}
