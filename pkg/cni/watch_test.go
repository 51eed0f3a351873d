package cni_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// TestConfDirChangesWithoutRestart: one Network sees the conf dir appear,
// fill, change and empty, and a missing plugin get installed.
func TestConfDirChangesWithoutRestart(t *testing.T) {
	env := cnitest.New(t)
	ctx := context.Background()
	cfg := env.Config()
	cfg.ConfDir = filepath.Join(t.TempDir(), "not-yet")
	n := newNetwork(t, cfg)
	notReady := func(reason string) {
		t.Helper()
		err := n.Status(ctx)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), reason) {
			t.Fatalf("Status = %v, want FailedPrecondition saying %q", err, reason)
		}
		if !strings.HasPrefix(err.Error(), "network not ready: ") {
			t.Fatalf("Status = %q: the CRI reports it as is", err)
		}
	}
	notReady("no network config found in " + cfg.ConfDir)
	p := newPod(t, env, "pod-watch")
	if _, err := n.Setup(ctx, p.id, p.ns, p.opts); !errdefs.IsFailedPrecondition(err) ||
		!strings.Contains(err.Error(), "pod-watch") || !strings.Contains(err.Error(), "no network config found") {
		t.Fatalf("Setup while not ready: %v", err)
	}

	// The directory appears, empty, then with the network.
	if err := os.Mkdir(cfg.ConfDir, 0o700); err != nil {
		t.Fatal(err)
	}
	notReady("no network config found in " + cfg.ConfDir)
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "README"), []byte("not a conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	notReady("no network config found")
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "10-net.conflist"), env.ConfList(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Status(ctx); err != nil {
		t.Fatalf("Status after the conf was written: %v", err)
	}
	r := setup(t, n, p)
	if !env.Subnet.Contains(r.IPs[0]) {
		t.Fatalf("IP %s", r.IPs[0])
	}
	teardown(t, n, p)

	// A file that sorts first takes over, naming a plugin not installed.
	missing := []byte(`{"cniVersion":"1.0.0","name":"first","plugins":[{"type":"cri-rt-missing"}]}`)
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "05-first.conflist"), missing, 0o600); err != nil {
		t.Fatal(err)
	}
	notReady(`plugin "cri-rt-missing" not found in ` + env.WrapDir + ":" + env.PluginDir)
	// Installing it is seen too (the bin dirs are part of the fingerprint).
	script := "#!/bin/sh\nexec " + filepath.Join(env.PluginDir, "loopback") + "\n"
	if err := os.WriteFile(filepath.Join(env.WrapDir, "cri-rt-missing"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if nets, err := n.Networks(ctx); err != nil || len(nets) != 1 || !strings.HasPrefix(nets[0], "eth0=first ") {
		t.Fatalf("Networks after installing the plugin: %v, %v", nets, err)
	}

	// Rewritten in place, same size: still seen.
	same := strings.Replace(string(missing), `"first"`, `"fir5t"`, 1)
	if err := os.WriteFile(filepath.Join(cfg.ConfDir, "05-first.conflist"), []byte(same), 0o600); err != nil {
		t.Fatal(err)
	}
	if nets, err := n.Networks(ctx); err != nil || !strings.HasPrefix(nets[0], "eth0=fir5t ") {
		t.Fatalf("Networks after an in-place rewrite: %v, %v", nets, err)
	}

	// Emptied again.
	for _, f := range []string{"05-first.conflist", "10-net.conflist"} {
		if err := os.Remove(filepath.Join(cfg.ConfDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	notReady("no network config found in " + cfg.ConfDir)
	env.AssertClean(t)
}

func TestMaxConfNum(t *testing.T) {
	env := cnitest.New(t)
	cfg := env.Config()
	cfg.MaxConfNum = 2
	// A second network on the same bridge and subnet (its upper half), as eth1.
	second := strings.Replace(string(env.ConfList()), `"name": "`+env.Name+`"`, `"name": "second"`, 1)
	second = strings.Replace(second, `"subnet": `, `"rangeStart": "`+strings.TrimSuffix(env.Subnet.Addr().String(), "0")+`128", "subnet": `, 1)
	env.WriteFile(t, "20-second.conflist", []byte(second))
	env.WriteFile(t, "30-third.conflist", []byte(`{"cniVersion":"1.0.0","name":"third","plugins":[{"type":"loopback"}]}`))
	n := newNetwork(t, cfg)
	nets, err := n.Networks(context.Background())
	if err != nil || len(nets) != 2 || !strings.HasPrefix(nets[1], "eth1=second ") {
		t.Fatalf("Networks = %v, %v", nets, err)
	}
	p := newPod(t, env, "pod-two")
	r := setup(t, n, p)
	if len(r.Attachments) != 2 || r.Attachments[1].IfName != "eth1" || len(r.IPs) != 1 ||
		r.IPs[0] != r.Attachments[0].IPs[0].Address.Addr() {
		t.Fatalf("result %+v", r)
	}
	if v := viewPod(t, p.ns); len(v.addrs["eth0"]) == 0 || len(v.addrs["eth1"]) == 0 {
		t.Fatalf("pod interfaces %v", v.addrs)
	}
	if got := env.AllocatedIPs(t); len(got) != 2 { // host-local keeps one dir per network
		t.Fatalf("allocations %v, want one per network", got)
	}
	teardown(t, n, p)
	env.AssertClean(t)
}

func TestConfigValidate(t *testing.T) {
	if err := cni.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for key, mutate := range map[string]func(*cni.Config){
		"conf_dir":       func(c *cni.Config) { c.ConfDir = "net.d" },
		"bin_dirs":       func(c *cni.Config) { c.BinDirs = []string{"/opt/cni/bin", "bin"} },
		"netns_dir":      func(c *cni.Config) { c.NetNSDir = "" },
		"cache_dir":      func(c *cni.Config) { c.CacheDir = "cache" },
		"max_conf_num":   func(c *cni.Config) { c.MaxConfNum = 0 },
		"plugin_timeout": func(c *cni.Config) { c.PluginTimeout = 0 },
		"ip_pref":        func(c *cni.Config) { c.IPPref = "v4" },
		"conf_template":  func(c *cni.Config) { c.ConfTemplate = "tmpl" },
	} {
		c := cni.DefaultConfig()
		mutate(&c)
		err := c.Validate()
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want InvalidArgument naming it", key, err)
		}
		if _, err := cni.New(c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("New with bad %s: %v", key, err)
		}
	}
	c := cni.DefaultConfig()
	c.BinDirs = nil
	if err := c.Validate(); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no bin dirs: %v", err)
	}
}

// BenchmarkStatus measures what the conf dir check costs every call: the
// fingerprint of the conf dir and of the plugin binaries, no reload.
func BenchmarkStatus(b *testing.B) {
	env := cnitest.New(b)
	n := newNetwork(b, env.Config())
	ctx := context.Background()
	for b.Loop() {
		if err := n.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConfigTOML: the [cni] section round-trips through the daemon's TOML
// decoder, durations as strings. (Its docs are the Go comments, printed by
// the daemon's `config default`.)
func TestConfigTOML(t *testing.T) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cni.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.Contains(text, `plugin_timeout = '1m0s'`) && !strings.Contains(text, `plugin_timeout = "1m0s"`) {
		t.Errorf("plugin_timeout not a duration string:\n%s", text)
	}
	var got cni.Config
	if err := toml.NewDecoder(strings.NewReader(text)).DisallowUnknownFields().Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cni.DefaultConfig()) {
		t.Fatalf("round trip: %+v", got)
	}
	err := toml.NewDecoder(strings.NewReader(`plugin_timeout = "soon"`)).Decode(&got)
	if err == nil {
		t.Fatal("a bad duration decoded")
	}
}

// TestStatusCommand: a network of CNI 1.1.0 is asked with STATUS, and a
// plugin that answers "not available" makes the network not ready.
func TestStatusCommand(t *testing.T) {
	env := cnitest.New(t)
	ctx := context.Background()
	down := filepath.Join(t.TempDir(), "down")
	script := `#!/bin/sh
if [ "$CNI_COMMAND" = STATUS ] && [ -e ` + down + ` ]; then
	echo '{"cniVersion":"1.1.0","code":50,"msg":"the overlay is down"}'; exit 1
fi
echo '{"cniVersion":"1.1.0"}'
`
	if err := os.WriteFile(filepath.Join(env.WrapDir, "cri-rt-status"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env.WriteFile(t, "05-status.conflist", []byte(`{"cniVersion":"1.1.0","name":"st","plugins":[{"type":"cri-rt-status"}]}`))
	n := newNetwork(t, env.Config())
	if err := n.Status(ctx); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if err := os.WriteFile(down, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := n.Status(ctx)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "plugin cri-rt-status STATUS: the overlay is down") {
		t.Fatalf("Status with the plugin down = %v", err)
	}
}
