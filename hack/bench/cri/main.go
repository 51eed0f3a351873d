// Command cri is the pod start benchmark: it drives CRI runtimes side by
// side through k8s.io/cri-client, the client kubelet uses, with the calls
// kubelet makes for a pod of one container, and prints their latencies as
// markdown tables (hack/bench/cri/run.sh starts containerd and cri-runtime
// and runs it).
//
// Each round runs three phases; within each the runtimes take turns at
// the finest grain (a pod, a wave, a list call), in an order that rotates,
// so that all see the same load of the machine:
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
	if err := byRuntime(rts, cpuFiles, "-cpu", func(rt *runtimeUnderTest, v string) error {
		rt.cpuFile = v
		_, err := readCPU(v)
		return err
	}); err != nil {
		log.Fatal(err)
	}
	if err := byRuntime(rts, procsFor, "-procs", func(rt *runtimeUnderTest, v string) error {
		rt.procsFile = v
		_, err := os.Stat(v)
		return err
	}); err != nil {
		log.Fatal(err)
	}
	if err := byRuntime(rts, daemons, "-daemon", func(rt *runtimeUnderTest, v string) (err error) {
		rt.daemonPID, err = strconv.Atoi(v)
		return err
	}); err != nil {
		log.Fatal(err)
	}
	res, mem, err := runAll(ctx, rts)
	if err != nil {
		for _, rt := range rts {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			rt.removeAll(cctx)
			cancel()
		}
		log.Fatal(err)
	}
	rep := report{parallel: *parallel, listPods: *listPods, res: res, mem: mem}
	for _, rt := range rts {
		rep.names = append(rep.names, rt.name)
	}
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, rep); err != nil {
			log.Fatal(err)
		}
	}
	rep.comparison(os.Stdout, true)
	memoryTable(os.Stdout, rep.names, rep.mem)
	if *details {
		fmt.Println()
		rep.comparison(os.Stdout, false)
		fmt.Println()
		rep.details(os.Stdout)
	}
}

// byRuntime applies each NAME=VALUE of vals to the runtime NAME.
func byRuntime(rts []*runtimeUnderTest, vals []string, flagName string, set func(*runtimeUnderTest, string) error) error {
	for _, nv := range vals {
		name, v, _ := strings.Cut(nv, "=")
		found := false
		for _, rt := range rts {
			if rt.name == name {
				if err := set(rt, v); err != nil {
					return fmt.Errorf("%s %q: %w", flagName, nv, err)
				}
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s %q: no such runtime", flagName, nv)
		}
	}
	return nil
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
