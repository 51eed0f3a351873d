package cni_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// pod is a pod's namespace and options, as the sandbox code will hold them.
type pod struct {
	id, ns string
	opts   cni.PodOptions
}

func newPod(t testing.TB, env *cnitest.Env, id string) pod {
	t.Helper()
	ns, err := cni.NewNetNS(env.NetNSDir, id)
	if err != nil {
		t.Fatal(err)
	}
	return pod{id: id, ns: ns, opts: cni.PodOptions{Namespace: "default", Name: "pod-" + id, UID: "uid-" + id}}
}

func newNetwork(t testing.TB, cfg cni.Config) *cni.Network {
	t.Helper()
	n, err := cni.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func setup(t testing.TB, n *cni.Network, p pod) *cni.Result {
	t.Helper()
	res, err := n.Setup(context.Background(), p.id, p.ns, p.opts)
	if err != nil {
		t.Fatalf("Setup %s: %v", p.id, err)
	}
	return res
}

func teardown(t testing.TB, n *cni.Network, p pod) {
	t.Helper()
	if err := n.Teardown(context.Background(), p.id, p.ns, p.opts); err != nil {
		t.Fatalf("Teardown %s: %v", p.id, err)
	}
	if err := cni.RemoveNetNS(p.ns); err != nil {
		t.Fatal(err)
	}
}

// podView is what a pod sees of its own network.
type podView struct {
	addrs        map[string][]string // interface → addresses
	up           map[string]bool
	defaultRoute string // gateway of the IPv4 default route, "" if none
}

func viewPod(t testing.TB, ns string) podView {
	t.Helper()
	v := podView{addrs: map[string][]string{}, up: map[string]bool{}}
	err := cni.WithNetNS(ns, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			v.up[ifc.Name] = ifc.Flags&net.FlagUp != 0
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				v.addrs[ifc.Name] = append(v.addrs[ifc.Name], a.String())
			}
		}
		// The thread's own view of /proc/net, not the main thread's.
		f, err := os.Open("/proc/thread-self/net/route")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 2 && fields[1] == "00000000" {
				b, _ := hex.DecodeString(fields[2])
				if len(b) == 4 {
					v.defaultRoute = netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}).String()
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSetupConnectsPodsOverTheBridge(t *testing.T) {
	env := cnitest.New(t)
	n := newNetwork(t, env.Config())
	a, b := newPod(t, env, "pod-a"), newPod(t, env, "pod-b")
	ra, rb := setup(t, n, a), setup(t, n, b)

	for _, r := range []*cni.Result{ra, rb} {
		if len(r.IPs) != 1 || !env.Subnet.Contains(r.IPs[0]) || r.IPs[0] == env.Gateway {
			t.Fatalf("IPs %v, want one in %s", r.IPs, env.Subnet)
		}
		if len(r.Attachments) != 1 || r.Attachments[0].Network != env.Name || r.Attachments[0].IfName != "eth0" {
			t.Fatalf("attachments %+v", r.Attachments)
		}
	}
	if ra.IPs[0] == rb.IPs[0] {
		t.Fatalf("both pods got %s", ra.IPs[0])
	}
	att := ra.Attachments[0]
	if len(att.IPs) != 1 || att.IPs[0].Interface != "eth0" || att.IPs[0].Gateway != env.Gateway ||
		att.IPs[0].Address != netip.PrefixFrom(ra.IPs[0], 24) {
		t.Fatalf("attachment IPs %+v", att.IPs)
	}
	if len(att.Routes) != 1 || att.Routes[0].Dst != netip.MustParsePrefix("0.0.0.0/0") {
		t.Fatalf("attachment routes %+v", att.Routes)
	}

	v := viewPod(t, a.ns)
	want := netip.PrefixFrom(ra.IPs[0], 24).String()
	if got := v.addrs["eth0"]; len(got) == 0 || got[0] != want || !v.up["eth0"] {
		t.Fatalf("pod eth0: %v up %v, want %s", v.addrs["eth0"], v.up["eth0"], want)
	}
	if !v.up["lo"] {
		t.Fatal("pod lo is down")
	}
	if v.defaultRoute != env.Gateway.String() {
		t.Fatalf("pod default route via %q, want %s", v.defaultRoute, env.Gateway)
	}

	// Pod b reaches a server in pod a over the bridge; pod a reaches its
	// own loopback; the host reaches pod a through the gateway.
	cnitest.Serve(cnitest.Listen(t, a.ns, ra.IPs[0].String()+":8080"), "hello from a")
	cnitest.Serve(cnitest.Listen(t, a.ns, "127.0.0.1:9090"), "lo of a")
	for _, c := range []struct{ from, addr, want string }{
		{b.ns, ra.IPs[0].String() + ":8080", "hello from a"},
		{a.ns, "127.0.0.1:9090", "lo of a"},
		{"", ra.IPs[0].String() + ":8080", "hello from a"},
	} {
		got, err := cnitest.Fetch(c.from, c.addr)
		if err != nil || got != c.want {
			t.Fatalf("fetch %s from %q: %q, %v", c.addr, c.from, got, err)
		}
	}
	if err := n.Check(context.Background(), a.id, a.ns); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// A second Setup of a pod is refused and leaves the first intact.
	if _, err := n.Setup(context.Background(), a.id, a.ns, a.opts); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Setup = %v, want AlreadyExists", err)
	}
	if got, err := cnitest.Fetch(b.ns, ra.IPs[0].String()+":8080"); err != nil || got != "hello from a" {
		t.Fatalf("pod a after a second Setup: %q, %v", got, err)
	}
	if ips := env.AllocatedIPs(t); len(ips) != 2 {
		t.Fatalf("allocations %v, want 2", ips)
	}
	teardown(t, n, a)
	teardown(t, n, b)
	env.AssertClean(t)
}

func TestPortMappingOnLoopback(t *testing.T) {
	env := cnitest.New(t)
	n := newNetwork(t, env.Config())
	hostPort := freePort(t)
	p := newPod(t, env, "pod-pm")
	p.opts.PortMappings = []cni.PortMapping{
		{HostPort: int32(hostPort), ContainerPort: 8080, Protocol: "TCP", HostIP: "127.0.0.1"},
		{ContainerPort: 9999}, // no host port: not passed
	}
	r := setup(t, n, p)
	cnitest.Serve(cnitest.Listen(t, p.ns, "0.0.0.0:8080"), "mapped")

	if rules := env.IptablesRules(t); len(rules) == 0 {
		t.Fatal("no iptables rule for the port mapping")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	if got, err := cnitest.Fetch("", addr); err != nil || got != "mapped" {
		t.Fatalf("fetch %s: %q, %v (pod %s)", addr, got, err, r.IPs)
	}
	teardown(t, n, p)
	env.AssertClean(t)
	if _, err := cnitest.Fetch("", addr); err == nil {
		t.Fatalf("%s still answers after Teardown", addr)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTeardownIsIdempotentAndTolerant(t *testing.T) {
	env := cnitest.New(t)
	n := newNetwork(t, env.Config())
	ctx := context.Background()

	t.Run("twice", func(t *testing.T) {
		p := newPod(t, env, "pod-twice")
		setup(t, n, p)
		for range 2 {
			if err := n.Teardown(ctx, p.id, p.ns, p.opts); err != nil {
				t.Fatal(err)
			}
		}
		teardown(t, n, p)
		env.AssertClean(t)
	})
	t.Run("never set up", func(t *testing.T) {
		if err := n.Teardown(ctx, "pod-never", "", cni.PodOptions{}); err != nil {
			t.Fatal(err)
		}
		env.AssertClean(t)
	})
	t.Run("netns removed first", func(t *testing.T) {
		p := newPod(t, env, "pod-nons")
		p.opts.PortMappings = []cni.PortMapping{{HostPort: int32(freePort(t)), ContainerPort: 80, HostIP: "127.0.0.1"}}
		setup(t, n, p)
		if err := cni.RemoveNetNS(p.ns); err != nil {
			t.Fatal(err)
		}
		teardown(t, n, p)
		env.AssertClean(t)
	})
	t.Run("conf dir emptied", func(t *testing.T) {
		p := newPod(t, env, "pod-noconf")
		p.opts.PortMappings = []cni.PortMapping{{HostPort: int32(freePort(t)), ContainerPort: 80, HostIP: "127.0.0.1"}}
		setup(t, n, p)
		env.RemoveConf(t)
		defer env.WriteConf(t)
		if err := n.Status(ctx); err == nil {
			t.Fatal("ready with an empty conf dir")
		}
		// The ADD's configuration comes from libcni's cache: the IP, the
		// veth and the rules are released all the same.
		teardown(t, n, p)
		env.AssertClean(t)
		// Nothing cached, nothing configured: nothing to run, no error.
		teardown(t, n, p)
	})
	t.Run("conf changed", func(t *testing.T) {
		p := newPod(t, env, "pod-changed")
		setup(t, n, p)
		// Another network now comes first; DEL still uses the ADD's.
		env.WriteFile(t, "00-other.conflist", []byte(`{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"loopback"}]}`))
		defer os.Remove(filepath.Join(env.ConfDir, "00-other.conflist"))
		teardown(t, n, p)
		env.AssertClean(t)
	})
}

func TestInternalLoopbackOff(t *testing.T) {
	env := cnitest.New(t)
	cfg := env.Config()
	cfg.UseInternalLoopback = false
	n := newNetwork(t, cfg)
	nets, err := n.Networks(context.Background())
	if err != nil || len(nets) != 2 || !strings.HasPrefix(nets[0], "lo=cni-loopback") {
		t.Fatalf("Networks = %v, %v", nets, err)
	}
	p := newPod(t, env, "pod-lo")
	r := setup(t, n, p)
	if len(r.Attachments) != 1 || r.Attachments[0].IfName != "eth0" {
		t.Fatalf("attachments %+v: the loopback is not one", r.Attachments)
	}
	if v := viewPod(t, p.ns); !v.up["lo"] {
		t.Fatal("lo down with the loopback plugin")
	}
	if err := n.Check(context.Background(), p.id, p.ns); err != nil {
		t.Fatalf("Check: %v", err)
	}
	teardown(t, n, p)
	env.AssertClean(t)
}

// timed runs fn and returns how long it took.
func timed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}
