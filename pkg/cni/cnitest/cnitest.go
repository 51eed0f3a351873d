// Package cnitest gives tests a private CNI network on this machine: a conf
// dir with one conf list (the real bridge, host-local and portmap plugins)
// on a bridge and a /24 of its own, its own host-local data dir, libcni
// cache and netns dir, and the means to check that nothing of it is left
// (AssertClean). Traffic stays on that bridge and on loopback: ipMasq is
// off and no route leads off the node.
//
// Each Env takes a number N that no other Env on the machine holds (a lock
// file), for a bridge "cri-rt-testN" and the subnet 10.88.N.0/24, so that
// test binaries running at once do not meet. When the last Env of the
// machine ends, the host is put back as the first found it: the shared
// portmap chains removed if they were not there, net.ipv4.ip_forward (which
// the bridge plugin turns on) restored.
//
// Tests in pkg/cni, the CRI and the fault suite use it; it needs root and
// the plugins of Debian's containernetworking-plugins (or /opt/cni/bin).
package cnitest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/cni"
)

// Env is one private network. Its fields are fixed by New.
type Env struct {
	Name      string       // the network's and the bridge's name: cri-rt-testN
	Subnet    netip.Prefix // 10.88.N.0/24, or 10.92.2N.0/23 (WithWideSubnet)
	Gateway   netip.Addr   // its first address, the bridge's
	ConfDir   string       // holds ConfFile once WriteConf ran
	DataDir   string       // host-local's data dir
	CacheDir  string       // libcni's cache dir
	NetNSDir  string       // where tests pin pod namespaces
	PluginDir string       // the real plugins
	WrapDir   string       // plugin wrappers (WrapPlugin), searched first

	lock *os.File // holds N
	wide bool     // WithWideSubnet
}

// plugins are the plugins an Env uses.
var plugins = []string{"bridge", "host-local", "portmap", "loopback"}

// New makes a private network for t, writes its configuration into ConfDir
// and undoes everything when t ends. It stops t (testenv.Missing) when
// this machine cannot run it.
func New(t testing.TB, opts ...Opt) *Env {
	t.Helper()
	testenv.NeedRoot(t, "a CNI bridge network")
	e := &Env{PluginDir: findPlugins(t)}
	for _, o := range opts {
		o(e)
	}
	for _, tool := range []string{"ip", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s is not installed (hack/deps.sh: iproute2, iptables): %v", tool, err)
		}
	}
	enterShared(t)
	e.takeNumber(t)
	dir := t.TempDir()
	e.ConfDir = filepath.Join(dir, "net.d")
	e.DataDir = filepath.Join(dir, "ipam")
	e.CacheDir = filepath.Join(dir, "cache")
	e.NetNSDir = filepath.Join(dir, "netns")
	e.WrapDir = filepath.Join(dir, "bin")
	for _, d := range []string{e.ConfDir, e.WrapDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.cleanup(t))
	e.WriteConf(t)
	return e
}

// Opt changes the network New makes.
type Opt func(*Env)

// WithWideSubnet gives the network a /23, 10.92.2N.0/23, for up to 509
// pods (the bridge plugin takes one gateway address, so one subnet).
func WithWideSubnet() Opt { return func(e *Env) { e.wide = true } }

// Config returns a cni.Config of this network: its conf, cache and netns
// dirs, the wrapper dir then the real plugins, a short plugin timeout.
func (e *Env) Config() cni.Config {
	cfg := cni.DefaultConfig()
	cfg.ConfDir = e.ConfDir
	cfg.BinDirs = []string{e.WrapDir, e.PluginDir}
	cfg.NetNSDir = e.NetNSDir
	cfg.CacheDir = e.CacheDir
	cfg.PluginTimeout = cni.Duration(30 * time.Second)
	return cfg
}

// ConfFile is the path of the configuration WriteConf writes.
func (e *Env) ConfFile() string { return filepath.Join(e.ConfDir, "10-"+e.Name+".conflist") }

// ConfList returns the network's configuration: a bridge with host-local
// IPAM on Subnet (gateway on the bridge, no masquerade), then portmap.
func (e *Env) ConfList() []byte {
	return fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, e.Name, e.Name, e.Subnet.String(), e.Gateway.String(), e.DataDir)
}

// WriteConf writes ConfList to ConfFile, atomically.
func (e *Env) WriteConf(t testing.TB) {
	t.Helper()
	e.WriteFile(t, filepath.Base(e.ConfFile()), e.ConfList())
}

// WriteFile writes data as the file name of ConfDir, atomically.
func (e *Env) WriteFile(t testing.TB, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(e.ConfDir, ".tmp-"+name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.ConfDir, name)); err != nil {
		t.Fatal(err)
	}
}

// RemoveConf empties ConfDir.
func (e *Env) RemoveConf(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(e.ConfDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if err := os.Remove(filepath.Join(e.ConfDir, ent.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// WrapPlugin puts a shell script named plugin in WrapDir, found before the
// real plugin: it runs script (sh), then execs the real plugin with the
// same stdin, arguments and environment. For failure injection.
func (e *Env) WrapPlugin(t testing.TB, plugin, script string) {
	t.Helper()
	body := fmt.Sprintf("#!/bin/sh\n%s\nexec %q \"$@\"\n", script, filepath.Join(e.PluginDir, plugin))
	if err := os.WriteFile(filepath.Join(e.WrapDir, plugin), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Hang wraps plugin so that it sleeps (for an hour, in a child process)
// instead of running when CNI_COMMAND is command and the returned marker
// file exists. Create the marker to arm it, remove it to disarm.
func (e *Env) Hang(t testing.TB, plugin, command string) (marker string) {
	t.Helper()
	marker = filepath.Join(t.TempDir(), "hang-"+plugin)
	e.WrapPlugin(t, plugin, fmt.Sprintf(`if [ "$CNI_COMMAND" = %q ] && [ -e %q ]; then sleep 3600; exit 1; fi`, command, marker))
	return marker
}

func findPlugins(t testing.TB) string {
	t.Helper()
	for _, d := range cni.DefaultBinDirs() {
		ok := true
		for _, p := range plugins {
			if fi, err := os.Stat(filepath.Join(d, p)); err != nil || !fi.Mode().IsRegular() {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	testenv.Missing(t, "CNI plugins %v not found in %v (Debian package containernetworking-plugins)", plugins, cni.DefaultBinDirs())
	return ""
}

// takeNumber locks the first free N whose subnet no interface of the host
// uses, and removes what a crashed run may have left of that network.
func (e *Env) takeNumber(t testing.TB) {
	t.Helper()
	dir := lockDir(t)
	for n := range 200 {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("net-%d.lock", n)), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		e.Name = fmt.Sprintf("cri-rt-test%d", n)
		e.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.88.%d.0/24", n))
		if e.wide {
			if n >= 128 {
				f.Close()
				break
			}
			e.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.92.%d.0/23", 2*n))
		}
		e.Gateway = e.Subnet.Addr().Next()
		if subnetInUse(e.Subnet, e.Name) {
			f.Close()
			continue
		}
		e.lock = f
		e.purge(t)
		return
	}
	t.Fatal("cnitest: no free network number in 0-199")
}

// subnetInUse reports whether an interface other than bridge has an
// address in p.
func subnetInUse(p netip.Prefix, bridge string) bool {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Name == bridge {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && p.Contains(ip.Unmap()) {
					return true
				}
			}
		}
	}
	return false
}

// cleanup removes the pods' namespaces left in NetNSDir, the bridge and the
// network's iptables rules, and releases N.
func (e *Env) cleanup(t testing.TB) func() {
	return func() {
		names, _ := cni.ListNetNS(e.NetNSDir)
		for _, name := range names {
			if err := cni.RemoveNetNS(filepath.Join(e.NetNSDir, name)); err != nil {
				t.Errorf("cnitest cleanup: %v", err)
			}
		}
		e.purge(t)
		e.lock.Close()
		leaveShared(t)
	}
}

// purge deletes the bridge and the portmap rules of this network.
func (e *Env) purge(t testing.TB) {
	if _, err := net.InterfaceByName(e.Name); err == nil {
		if out, err := exec.Command("ip", "link", "del", e.Name).CombinedOutput(); err != nil {
			t.Errorf("cnitest: ip link del %s: %v: %s", e.Name, err, out)
		}
	}
	if err := purgePortmap(e.Name); err != nil {
		t.Errorf("cnitest: %v", err)
	}
}

// AssertClean fails t unless nothing of a pod is left on the network: no
// port on the bridge (veth), no IP allocation in DataDir, no entry in the
// libcni cache, no file in NetNSDir and no iptables rule naming the
// network or its subnet. Namespaces die asynchronously in the kernel, and
// their veths with them, so it waits up to 10s for the veths.
func (e *Env) AssertClean(t testing.TB) {
	t.Helper()
	var ports []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ports = e.BridgePorts()
		if len(ports) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(ports) > 0 {
		t.Errorf("cnitest: ports left on bridge %s: %v", e.Name, ports)
	}
	if ips := e.AllocatedIPs(t); len(ips) > 0 {
		t.Errorf("cnitest: IP allocations left in %s: %v", e.DataDir, ips)
	}
	if left, _ := os.ReadDir(filepath.Join(e.CacheDir, "results")); len(left) > 0 {
		t.Errorf("cnitest: libcni cache entries left: %v", names(left))
	}
	if left, _ := cni.ListNetNS(e.NetNSDir); len(left) > 0 {
		t.Errorf("cnitest: netns files left in %s: %v", e.NetNSDir, left)
	}
	if rules := e.IptablesRules(t); len(rules) > 0 {
		t.Errorf("cnitest: iptables rules left:\n%s", strings.Join(rules, "\n"))
	}
}

// BridgePorts returns the interfaces attached to the bridge.
func (e *Env) BridgePorts() []string {
	entries, err := os.ReadDir(filepath.Join("/sys/class/net", e.Name, "brif"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return names(entries)
}

// AllocatedIPs returns the addresses host-local holds in DataDir, as
// "<network>/<ip>", for every network of the Env.
func (e *Env) AllocatedIPs(t testing.TB) []string {
	t.Helper()
	nets, err := os.ReadDir(e.DataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, nw := range nets {
		entries, err := os.ReadDir(filepath.Join(e.DataDir, nw.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			if _, err := netip.ParseAddr(ent.Name()); err == nil {
				ips = append(ips, nw.Name()+"/"+ent.Name())
			}
		}
	}
	return ips
}

// IptablesRules returns the rules of any table that name the network or
// its subnet.
func (e *Env) IptablesRules(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	prefix := strings.TrimSuffix(e.Subnet.Addr().String(), "0")
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `\"`+e.Name+`\"`) || strings.Contains(line, prefix) {
			rules = append(rules, line)
		}
	}
	return rules
}

func names(entries []os.DirEntry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
