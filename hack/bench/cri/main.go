// Command cri is the pod start benchmark: it drives CRI runtimes side by
// side through k8s.io/cri-client, the client kubelet uses, with the calls
// kubelet makes for a pod of one container, and prints their latencies as
// markdown tables (hack/bench/cri/run.sh starts containerd and cri-runtime
// and runs it).
//
// Each round runs, for each runtime in turn (the order rotates from round
// to round, so that both see the same load of the machine):
//
//   - sequential: -n pods, one after the other: RunPodSandbox,
//     PodSandboxStatus, ImageStatus, CreateContainer, StartContainer (the
//     pod start), then StopContainer, StopPodSandbox, RemoveContainer,
//     RemovePodSandbox (the teardown), each call timed;
//   - parallel: -parallel-pods pods in waves of -parallel started at once,
//     each pod's start timed, then each wave torn down at once;
//   - list: -list-pods pods running, then -list-calls calls each of
//     ListContainers and ListPodSandbox without a filter, as kubelet's
//     relist makes them.
//
// The images are pulled before anything is timed; a few pods warm each
// runtime up first. A failed call ends the run: the figures of a runtime
// that fails are not figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

type runtimeFlags []string

func (r *runtimeFlags) String() string     { return strings.Join(*r, ",") }
func (r *runtimeFlags) Set(v string) error { *r = append(*r, v); return nil }

var (
	runtimes     runtimeFlags
	cpuFiles     runtimeFlags
	pauseImage   = flag.String("pause", "", "the runtimes' sandbox image, pulled before the timings (empty: each pulls its own)")
	image        = flag.String("image", "", "the container image (required): busybox, with sh and sleep")
	n            = flag.Int("n", 50, "pods started one after the other, per runtime and round")
	parallel     = flag.Int("parallel", 20, "pods started at once in the parallel phase")
	parallelPods = flag.Int("parallel-pods", 60, "pods per runtime and round in the parallel phase, in waves of -parallel")
	listPods     = flag.Int("list-pods", 100, "pods present for the list calls")
	listCalls    = flag.Int("list-calls", 500, "calls of each list RPC per runtime and round")
	rounds       = flag.Int("rounds", 3, "rounds; the runtimes alternate within each")
	warmup       = flag.Int("warmup", 3, "pods started and removed, untimed, before the first round")
	settle       = flag.Duration("settle", 2*time.Second, "pause between phases, for the work a phase left behind (exits, GC) to end")
	timeout      = flag.Duration("timeout", 2*time.Minute, "the clients' per-call deadline (kubelet's --runtime-request-timeout)")
	dir          = flag.String("dir", "", "kubelet's side: pod data and log directories (default: a temporary directory)")
	jsonOut      = flag.String("json", "", "write every sample here, as JSON")
	details      = flag.Bool("details", true, "also print each metric's count, mean, max and the spread over the rounds")
)

func main() {
	flag.Var(&runtimes, "runtime", "NAME=ENDPOINT of a runtime, e.g. containerd=unix:///run/containerd/containerd.sock; "+
		"repeat it: the first is the reference of the ratios")
	flag.Var(&cpuFiles, "cpu", "NAME=FILE: the CPU usage of runtime NAME's cgroup (daemon, shims, runc, CNI plugins), "+
		"cgroup v1 cpuacct.usage or v2 cpu.stat; repeatable")
	klog.InitFlags(nil)
	flag.Parse()
	if len(runtimes) == 0 || *image == "" {
		log.Fatal("usage: cri -runtime NAME=ENDPOINT [-runtime NAME=ENDPOINT] -image REF [-pause REF] [flags]")
	}
	ctx := context.Background()
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "podbench"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(work)
	}
	var rts []*runtimeUnderTest
	for _, spec := range runtimes {
		rt, err := connect(ctx, spec, work)
		if err != nil {
			log.Fatal(err)
		}
		rts = append(rts, rt)
	}
	for _, c := range cpuFiles {
		name, file, _ := strings.Cut(c, "=")
		found := false
		for _, rt := range rts {
			if rt.name == name {
				rt.cpuFile, found = file, true
			}
		}
		if _, err := readCPU(file); !found || err != nil {
			log.Fatalf("-cpu %q: no such runtime, or %v", c, err)
		}
	}
	res, err := runAll(ctx, rts)
	if err != nil {
		for _, rt := range rts {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			rt.removeAll(cctx)
			cancel()
		}
		log.Fatal(err)
	}
	rep := report{parallel: *parallel, listPods: *listPods, res: res}
	for _, rt := range rts {
		rep.names = append(rep.names, rt.name)
	}
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rep); err != nil {
			log.Fatal(err)
		}
	}
	rep.comparison(os.Stdout, true)
	if *details {
		fmt.Println()
		rep.comparison(os.Stdout, false)
		fmt.Println()
		rep.details(os.Stdout)
	}
}

// connect opens kubelet's runtime and image clients to NAME=ENDPOINT.
func connect(ctx context.Context, spec, work string) (*runtimeUnderTest, error) {
	name, endpoint, ok := strings.Cut(spec, "=")
	if !ok || name == "" || endpoint == "" {
		return nil, fmt.Errorf("-runtime %q: want NAME=ENDPOINT", spec)
	}
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(*timeout).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(*timeout).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := work + "/" + name
	return &runtimeUnderTest{name: name, rt: rt, img: img, image: *image, dir: d}, os.MkdirAll(d, 0o755)
}

// runAll pulls the images, warms the runtimes up and runs the rounds.
func runAll(ctx context.Context, rts []*runtimeUnderTest) (map[string]samples, error) {
	recs := map[string]*recorder{}
	for _, rt := range rts {
		recs[rt.name] = &recorder{s: samples{}}
		for _, ref := range []string{*pauseImage, *image} {
			if ref == "" {
				continue
			}
			if err := rt.ensureImage(ctx, ref); err != nil {
				return nil, err
			}
		}
		for i := 0; i < *warmup; i++ {
			if err := rt.sequential(ctx, fmt.Sprintf("warmup-%d", i), 1, timer{}); err != nil {
				return nil, fmt.Errorf("%s: warm-up: %w", rt.name, err)
			}
		}
	}
	phases := []struct {
		name string
		run  func(*runtimeUnderTest, string, timer) error
	}{
		{"sequential", func(rt *runtimeUnderTest, prefix string, t timer) error {
			return rt.perPodCPU(t, mCPUSeq, *n, func() error { return rt.sequential(ctx, prefix, *n, t) })
		}},
		{"parallel", func(rt *runtimeUnderTest, prefix string, t timer) error {
			return rt.perPodCPU(t, mCPUPar, *parallelPods, func() error { return rt.parallel(ctx, prefix, *parallelPods, *parallel, t) })
		}},
		{"list", func(rt *runtimeUnderTest, prefix string, t timer) error {
			return rt.list(ctx, prefix, *listPods, *listCalls, t)
		}},
	}
	for round := 0; round < *rounds; round++ {
		for _, ph := range phases {
			for i := range rts {
				rt := rts[(i+round)%len(rts)]
				log.Printf("round %d, %s, %s (load %s)", round+1, ph.name, rt.name, loadavg())
				prefix := fmt.Sprintf("r%d-%s", round, ph.name[:3])
				if err := ph.run(rt, prefix, timer{rec: recs[rt.name], round: round}); err != nil {
					return nil, fmt.Errorf("%s: round %d, %s: %w", rt.name, round+1, ph.name, err)
				}
				time.Sleep(*settle)
			}
		}
	}
	out := map[string]samples{}
	for name, r := range recs {
		out[name] = r.s
	}
	return out, nil
}

// sequential starts and tears down count pods one after the other.
func (r *runtimeUnderTest) sequential(ctx context.Context, prefix string, count int, t timer) error {
	for i := 0; i < count; i++ {
		p, err := r.newPod(fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			return err
		}
		_, total, err := r.start(ctx, p, t)
		if err != nil {
			return err
		}
		t.add(mPodStart, total)
		down, err := r.stop(ctx, p, t)
		if err != nil {
			return err
		}
		t.add(mTeardown, down)
	}
	return nil
}

// parallel starts count pods in waves of width started at once; each
// wave is torn down at once before the next.
func (r *runtimeUnderTest) parallel(ctx context.Context, prefix string, count, width int, t timer) error {
	for wave := 0; wave*width < count; wave++ {
		pods := make([]*pod, min(width, count-wave*width))
		for i := range pods {
			var err error
			if pods[i], err = r.newPod(fmt.Sprintf("%s-%d-%d", prefix, wave, i)); err != nil {
				return err
			}
		}
		err := all(pods, func(p *pod) error {
			run, total, err := r.start(ctx, p, timer{})
			if err == nil {
				t.add(mParRun, run)
				t.add(mParStart, total)
			}
			return err
		})
		if err != nil {
			return err
		}
		if err := all(pods, func(p *pod) error {
			down, err := r.stop(ctx, p, timer{})
			if err == nil {
				t.add(mParDown, down)
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// list starts count pods (untimed, a few at a time), times calls calls
// of ListContainers and of ListPodSandbox, and removes the pods.
func (r *runtimeUnderTest) list(ctx context.Context, prefix string, count, calls int, t timer) error {
	pods := make([]*pod, count)
	for i := range pods {
		var err error
		if pods[i], err = r.newPod(fmt.Sprintf("%s-%d", prefix, i)); err != nil {
			return err
		}
	}
	const width = 10
	for i := 0; i < count; i += width {
		if err := all(pods[i:min(i+width, count)], func(p *pod) error {
			_, _, err := r.start(ctx, p, timer{})
			return err
		}); err != nil {
			return err
		}
	}
	for i := 0; i < calls; i++ {
		if _, err := t.call(mListCtrs, func() error {
			ctrs, err := r.rt.ListContainers(ctx, nil)
			if err == nil && len(ctrs) < count {
				err = fmt.Errorf("%d containers listed, want at least %d", len(ctrs), count)
			}
			return err
		}); err != nil {
			return err
		}
		if _, err := t.call(mListPods, func() error {
			pods, err := r.rt.ListPodSandbox(ctx, nil)
			if err == nil && len(pods) < count {
				err = fmt.Errorf("%d pods listed, want at least %d", len(pods), count)
			}
			return err
		}); err != nil {
			return err
		}
	}
	for i := 0; i < count; i += width {
		if err := all(pods[i:min(i+width, count)], func(p *pod) error {
			_, err := r.stop(ctx, p, timer{})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// all runs fn for each pod at once, released together, and returns the
// first error.
func all(pods []*pod, fn func(*pod) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	ready := make(chan struct{})
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			errs[i] = fn(p)
		}()
	}
	close(ready)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// perPodCPU runs phase and records the CPU time the runtime's cgroup
// spent in it, per pod of the count it starts.
func (r *runtimeUnderTest) perPodCPU(t timer, metric string, count int, phase func() error) error {
	if r.cpuFile == "" || count == 0 {
		return phase()
	}
	before, err := readCPU(r.cpuFile)
	if err != nil {
		return err
	}
	if err := phase(); err != nil {
		return err
	}
	after, err := readCPU(r.cpuFile)
	if err != nil {
		return err
	}
	t.add(metric, (after-before)/time.Duration(count))
	return nil
}

// readCPU reads a cgroup's CPU usage: cgroup v1 cpuacct.usage
// (nanoseconds) or the usage_usec of cgroup v2 cpu.stat.
func readCPU(file string) (time.Duration, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	if strings.HasSuffix(file, "cpu.stat") {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err
			}
		}
		return 0, fmt.Errorf("%s: no usage_usec", file)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeJSON writes every sample, in milliseconds, by runtime, metric and
// round.
func writeJSON(path string, rep report) error {
	out := map[string]map[string][][]float64{}
	for _, name := range rep.names {
		out[name] = map[string][][]float64{}
		for m, rounds := range rep.res[name] {
			var rs [][]float64
			for _, r := range rounds {
				var ds []float64
				for _, d := range r {
					ds = append(ds, float64(d)/float64(time.Millisecond))
				}
				rs = append(rs, ds)
			}
			out[name][rep.label(m)] = rs
		}
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
