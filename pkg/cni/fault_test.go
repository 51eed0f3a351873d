package cni_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// hangPID wraps plugin so that, on command, it starts a sleeping child,
// writes the child's pid to the returned file, and waits for it.
func hangPID(t *testing.T, env *cnitest.Env, plugin, command string) string {
	pidFile := filepath.Join(t.TempDir(), "sleeper.pid")
	env.WrapPlugin(t, plugin, `if [ "$CNI_COMMAND" = `+command+` ]; then sleep 3600 & echo $! > `+pidFile+`; wait; exit 1; fi`)
	return pidFile
}

// assertKilled fails t if the process whose pid is in pidFile still runs
// (a zombie waiting for init to reap it has been killed).
func assertKilled(t *testing.T, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the plugin never hung: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		// pid (comm) state ...
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hung plugin's child %d outlived the kill", pid)
		}
	}
}

// TestHungPluginKilledAtDeadline: a bridge plugin that hangs on ADD is
// killed, with its child, when the caller's ctx expires; Setup says so,
// and what the ADD had done is undone.
func TestHungPluginKilledAtDeadline(t *testing.T) {
	env := cnitest.New(t)
	pidFile := hangPID(t, env, "bridge", "ADD")
	n := newNetwork(t, env.Config())
	p := newPod(t, env, "pod-hang")

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var err error
	took := timed(func() { _, err = n.Setup(ctx, p.id, p.ns, p.opts) })
	if !errdefs.IsDeadlineExceeded(err) {
		t.Fatalf("Setup = %v, want DeadlineExceeded", err)
	}
	for _, want := range []string{"pod-hang", `network "` + env.Name + `"`, "bridge ADD killed after"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if took > 5*time.Second {
		t.Fatalf("Setup returned after %s, the deadline was 500ms", took)
	}
	assertKilled(t, pidFile)
	teardown(t, n, p)
	env.AssertClean(t)
}

// TestPluginTimeout: with no deadline from the caller, plugin_timeout ends
// a hung plugin, and the error is Unavailable and names the setting.
func TestPluginTimeout(t *testing.T) {
	env := cnitest.New(t)
	pidFile := hangPID(t, env, "portmap", "ADD")
	cfg := env.Config()
	cfg.PluginTimeout = cni.Duration(300 * time.Millisecond)
	n := newNetwork(t, cfg)
	p := newPod(t, env, "pod-timeout")
	_, err := n.Setup(context.Background(), p.id, p.ns, p.opts)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "portmap ADD killed after plugin_timeout 300ms") {
		t.Fatalf("Setup = %v, want Unavailable naming plugin_timeout", err)
	}
	assertKilled(t, pidFile)
	// The bridge ADD before it was undone: no IP, no veth.
	if ips := env.AllocatedIPs(t); len(ips) != 0 {
		t.Fatalf("allocations after a failed Setup: %v", ips)
	}
	teardown(t, n, p)
	env.AssertClean(t)
}

// TestPluginErrorClasses: a plugin's CNI error code decides the class.
func TestPluginErrorClasses(t *testing.T) {
	env := cnitest.New(t)
	n := newNetwork(t, env.Config())
	for _, c := range []struct {
		code  int
		class func(error) bool
	}{
		{11, errdefs.IsUnavailable},       // try again later
		{999, errdefs.IsUnavailable},      // the plugin's own failure
		{7, errdefs.IsFailedPrecondition}, // invalid network config
		{3, errdefs.IsNotFound},           // unknown container
		{0, errdefs.IsUnavailable},        // no error JSON at all
	} {
		out := `{"cniVersion":"1.0.0","code":` + strconv.Itoa(c.code) + `,"msg":"injected failure"}`
		if c.code == 0 {
			out = "garbage"
		}
		env.WrapPlugin(t, "portmap", `if [ "$CNI_COMMAND" = ADD ]; then echo 'stderr says why' >&2; echo '`+out+`'; exit 1; fi`)
		p := newPod(t, env, "pod-code-"+strconv.Itoa(c.code))
		_, err := n.Setup(context.Background(), p.id, p.ns, p.opts)
		if err == nil || !c.class(err) || !strings.Contains(err.Error(), `type="portmap"`) || !strings.Contains(err.Error(), p.id) {
			t.Errorf("code %d: %v", c.code, err)
		}
		if c.code == 0 && !strings.Contains(err.Error(), "stderr says why") {
			t.Errorf("code 0: the error lacks the plugin's stderr: %v", err)
		}
		teardown(t, n, p)
	}
	env.AssertClean(t)
}

func TestBadConfAndMissingPlugin(t *testing.T) {
	env := cnitest.New(t)
	ctx := context.Background()
	n := newNetwork(t, env.Config())
	p := newPod(t, env, "pod-bad")
	for _, c := range []struct{ name, data, reason string }{
		{"05-bad.conflist", `{"cniVersion": "1.0.0", "name": `, "05-bad.conflist"},
		{"05-bad.conf", `{"cniVersion": "1.0.0", "name": "x"}`, `missing 'type'`},
		{"05-list-as.conf", `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}`, `missing 'type'`},
		{"05-bad.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": []}`, "no plugins"},
		{"05-bad.conflist", `{"cniVersion": "1.0.0", "name": "a b", "plugins": [{"type": "bridge"}]}`, `network name "a b"`},
		{"05-bad.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "cri-rt-nope"}]}`, `plugin "cri-rt-nope" not found in`},
	} {
		env.WriteFile(t, c.name, []byte(c.data))
		err := n.Status(ctx)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s %s: Status = %v, want FailedPrecondition saying %q", c.name, c.data, err, c.reason)
		}
		if _, err := n.Setup(ctx, p.id, p.ns, p.opts); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: Setup = %v", c.name, err)
		}
		if err := os.Remove(filepath.Join(env.ConfDir, c.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Status(ctx); err != nil {
		t.Fatalf("Status with the good conf back: %v", err)
	}

	// A plugin removed after the ADD: DEL cannot release, so Teardown
	// fails (and can be retried) rather than leak in silence.
	setup(t, n, p)
	env.WrapPlugin(t, "portmap", "exit 0")
	cfg := env.Config()
	cfg.BinDirs = []string{env.WrapDir} // bridge and host-local are not there
	broken := newNetwork(t, cfg)
	err := broken.Teardown(ctx, p.id, p.ns, p.opts)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `plugin "bridge" not found`) || !strings.Contains(err.Error(), p.id) {
		t.Fatalf("Teardown without the bridge plugin = %v", err)
	}
	teardown(t, n, p)
	env.AssertClean(t)
}

func TestBadArguments(t *testing.T) {
	env := cnitest.New(t)
	ctx := context.Background()
	n := newNetwork(t, env.Config())
	p := newPod(t, env, "pod-args")
	for name, c := range map[string]struct {
		id, ns string
		opts   cni.PodOptions
	}{
		"empty pod ID":      {"", p.ns, p.opts},
		"pod ID with slash": {"../x", p.ns, p.opts},
		"relative netns":    {p.id, "netns/x", p.opts},
		"netns not mounted": {p.id, filepath.Join(env.NetNSDir, "nope"), p.opts},
		"container port 0":  {p.id, p.ns, cni.PodOptions{PortMappings: []cni.PortMapping{{HostPort: 80}}}},
		"host port too big": {p.id, p.ns, cni.PodOptions{PortMappings: []cni.PortMapping{{HostPort: 70000, ContainerPort: 80}}}},
		"protocol icmp":     {p.id, p.ns, cni.PodOptions{PortMappings: []cni.PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "icmp"}}}},
		"host IP not an IP": {p.id, p.ns, cni.PodOptions{PortMappings: []cni.PortMapping{{HostPort: 80, ContainerPort: 80, HostIP: "localhost"}}}},
		"ip range not CIDR": {p.id, p.ns, cni.PodOptions{IPRanges: [][]cni.IPRange{{{Subnet: "10.0.0.0"}}}}},
	} {
		if _, err := n.Setup(ctx, c.id, c.ns, c.opts); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Setup = %v, want InvalidArgument", name, err)
		}
	}
	if err := n.Teardown(ctx, "../x", p.ns, p.opts); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Teardown of a bad ID = %v", err)
	}
	if err := n.Check(ctx, p.id, p.ns); !errdefs.IsNotFound(err) {
		t.Errorf("Check of a pod never set up = %v, want NotFound", err)
	}
	if err := cni.RemoveNetNS(p.ns); err != nil {
		t.Fatal(err)
	}
	env.AssertClean(t)
}

// TestCheckSeesBrokenPod: CHECK finds a pod whose eth0 was deleted.
func TestCheckSeesBrokenPod(t *testing.T) {
	env := cnitest.New(t)
	ctx := context.Background()
	n := newNetwork(t, env.Config())
	p := newPod(t, env, "pod-check")
	setup(t, n, p)
	if err := n.Check(ctx, p.id, p.ns); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nsenter", "--net="+p.ns, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
		testenv.Missing(t, "nsenter (util-linux) and ip (iproute2): %v: %s", err, out)
	}
	err := n.Check(ctx, p.id, p.ns)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), p.id) || !strings.Contains(err.Error(), "plugin bridge CHECK: ") {
		t.Fatalf("Check of a pod without eth0 = %v", err)
	}
	t.Logf("Check: %v", err)
	teardown(t, n, p)
	env.AssertClean(t)
}
