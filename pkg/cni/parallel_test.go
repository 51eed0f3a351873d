package cni_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
)

// TestParallelPods sets up 50 pods at once, then tears them all down at
// once: distinct IPs, all reachable, nothing left.
func TestParallelPods(t *testing.T) {
	const pods = 50
	env := cnitest.New(t)
	n := newNetwork(t, env.Config())
	ctx := context.Background()

	ps := make([]pod, pods)
	ips := make([]netip.Addr, pods)
	setupTimes := make([]time.Duration, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range pods {
		wg.Go(func() {
			t0 := time.Now()
			id := fmt.Sprintf("pod-%02d", i)
			ns, err := cni.NewNetNS(env.NetNSDir, id)
			if err != nil {
				errs[i] = err
				return
			}
			ps[i] = pod{id: id, ns: ns, opts: cni.PodOptions{Namespace: "default", Name: id}}
			r, err := n.Setup(ctx, id, ns, ps[i].opts)
			if err != nil {
				errs[i] = err
				return
			}
			ips[i], setupTimes[i] = r.IPs[0], time.Since(t0)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		if seen[ip] || !env.Subnet.Contains(ip) {
			t.Fatalf("IP %s twice or outside %s: %v", ip, env.Subnet, ips)
		}
		seen[ip] = true
	}
	if got := len(env.AllocatedIPs(t)); got != pods {
		t.Fatalf("%d allocations, want %d", got, pods)
	}
	if got := len(env.BridgePorts()); got != pods {
		t.Fatalf("%d veths on the bridge, want %d", got, pods)
	}
	slices.Sort(setupTimes)
	t.Logf("%d pods set up in parallel in %s: netns+ADD p50 %s, max %s", pods, wall.Round(time.Millisecond),
		setupTimes[pods/2].Round(time.Millisecond), setupTimes[pods-1].Round(time.Millisecond))

	// The last pod reaches the first over the bridge.
	cnitest.Serve(cnitest.Listen(t, ps[0].ns, ips[0].String()+":8080"), "first")
	if got, err := cnitest.Fetch(ps[pods-1].ns, ips[0].String()+":8080"); err != nil || got != "first" {
		t.Fatalf("fetch: %q, %v", got, err)
	}

	start = time.Now()
	for i := range pods {
		wg.Go(func() {
			if err := n.Teardown(ctx, ps[i].id, ps[i].ns, ps[i].opts); err != nil {
				errs[i] = err
				return
			}
			errs[i] = cni.RemoveNetNS(ps[i].ns)
		})
	}
	wg.Wait()
	t.Logf("%d pods torn down in parallel in %s", pods, time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
	}
	env.AssertClean(t)
}

// BenchmarkPodNetwork measures one pod's netns + ADD, and DEL + netns
// removal, one pod at a time.
func BenchmarkPodNetwork(b *testing.B) {
	for _, internal := range []bool{true, false} {
		b.Run(fmt.Sprintf("internal_loopback=%v", internal), func(b *testing.B) {
			env := cnitest.New(b)
			cfg := env.Config()
			cfg.UseInternalLoopback = internal
			n := newNetwork(b, cfg)
			var up, down time.Duration
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("bench-%d", i)
				var p pod
				up += timed(func() {
					p = newPod(b, env, id)
					setup(b, n, p)
				})
				down += timed(func() { teardown(b, n, p) })
			}
			b.ReportMetric(float64(up.Microseconds())/float64(b.N)/1000, "ms-setup/op")
			b.ReportMetric(float64(down.Microseconds())/float64(b.N)/1000, "ms-teardown/op")
		})
	}
}
