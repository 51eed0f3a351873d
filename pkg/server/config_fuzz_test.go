package server

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
)

// FuzzDecodeConfig decodes fuzzed config files as LoadConfig does. Any
// file, unknown keys and values of the wrong type or range included, is
// either refused with InvalidArgument or gives a Config that holds what
// the documentation of each key promises (the values the daemon will use
// without checking them again), and that encodes back to a file giving
// the same Config.
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"root = \"/srv/crt\"\n[gc]\nschedule_delay = \"5ms\"\n[image]\nmax_concurrent_downloads = 8\n",
		"[grpc]\nshutdown_timeout = 10\n",
		"[grpc]\nadress = \"/x.sock\"\n",
		"[gc]\npause_threshold = nan\n",
		"[gc]\npause_threshold = inf\nstartup_delay = \"-1s\"\n",
		"[log]\nverbosity = 9223372036854775807\n",
		"[cri]\nsandbox_image = \"Not A Reference!\"\nstream_address = \"nohostport\"\n",
		"[cri.runtimes.x]\nbinary = \"relative/runc\"\n[cri]\ndefault_runtime = \"x\"\n",
		"[cri.runtimes]\nrunc = {}\n\"\" = { binary = \"\" }\n",
		"[cni]\nbin_dirs = []\nmax_conf_num = 0\n",
		"[image]\nconfig_path = \"relative\"\nmax_layer_size = -1\n",
		"root = [1, 2]\n[grpc]\naddress = \"/" + strings.Repeat("x", 120) + "\"\n",
		"[[cri]]\n",
		"cri = 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		cfg := DefaultConfig()
		if err := decodeConfig([]byte(file), &cfg); err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("decode: error of the wrong class: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("validate: error of the wrong class: %v", err)
			}
			return
		}
		checkConfigPromises(t, cfg)
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("a valid config does not encode: %v", err)
		}
		again := DefaultConfig()
		if err := decodeConfig(out, &again); err != nil {
			t.Fatalf("a valid config encodes as a file that does not decode: %v\n%s", err, out)
		}
		if err := again.Validate(); err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip:\n%+v\n%v\nwant\n%+v\nfile:\n%s", again, err, cfg, out)
		}
	})
}

// checkConfigPromises holds a validated Config to the documentation of
// its keys.
func checkConfigPromises(t *testing.T, cfg Config) {
	t.Helper()
	if !filepath.IsAbs(cfg.Root) || !filepath.IsAbs(cfg.State) || !filepath.IsAbs(cfg.GRPC.Address) || len(cfg.GRPC.Address) > MaxSocketPath {
		t.Fatalf("root %q state %q grpc.address %q", cfg.Root, cfg.State, cfg.GRPC.Address)
	}
	if cfg.CRI.Address != "" && (!filepath.IsAbs(cfg.CRI.Address) || len(cfg.CRI.Address) > MaxSocketPath) {
		t.Fatalf("cri.address %q", cfg.CRI.Address)
	}
	if _, err := reference.ParseNormalizedNamed(cfg.CRI.SandboxImage); err != nil {
		t.Fatalf("cri.sandbox_image %q is no image reference: %v", cfg.CRI.SandboxImage, err)
	}
	for name, rt := range cfg.CRI.Runtimes {
		bin := rt.Binary
		if bin == "" {
			bin = name
		}
		if !filepath.IsAbs(bin) && strings.ContainsRune(bin, '/') {
			t.Fatalf("cri.runtimes.%s.binary %q is neither a name in PATH nor an absolute path", name, rt.Binary)
		}
	}
	if cfg.GC.PauseThreshold <= 0 || cfg.GC.PauseThreshold > 1 || cfg.GC.ScheduleDelay < 0 || cfg.GC.StartupDelay < 0 {
		t.Fatalf("gc %+v", cfg.GC)
	}
	if len(cfg.CNI.BinDirs) == 0 || cfg.CNI.MaxConfNum < 1 {
		t.Fatalf("cni %+v", cfg.CNI)
	}
	for _, d := range append([]string{cfg.CNI.ConfDir, cfg.CNI.NetNSDir, cfg.CNI.CacheDir}, cfg.CNI.BinDirs...) {
		if !filepath.IsAbs(d) {
			t.Fatalf("cni directory %q is not absolute", d)
		}
	}
}
