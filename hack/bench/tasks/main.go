// Command tasks measures containers run through the daemons, cri-runtime's
// against containerd v2.4.2's, side by side in one run on the same image
// pulled from the same loopback registry (hack/bench/tasks/run.sh):
//
//   - the PSS of the shims (/proc/PID/smaps_rollup) with 1 and N running
//     containers started by `cri-runtime run -d` and `ctr run -d` (one shim
//     per container for both), and by `cri-runtime run -d --group pod` (one
//     shim for all, as a pod has it), per container;
//   - run-to-exit of /bin/true: `cri-runtime run --rm`, bare `runc run` of
//     the same rootfs, `ctr run --rm`, alternating, with where the time of
//     ours goes (CLI start, each RPC, from the daemon's histograms);
//   - restore: from the start of `cri-runtime serve` to every one of R
//     running containers listed by the new daemon.
//
// containerd runs with its own root, state and socket, never as a system
// service.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cri-runtime/cri-runtime/hack/bench/internal/benchimage"
	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

var (
	binDir       = flag.String("bin", "", "directory with cri-runtime and cri-runtime-shim (required)")
	containerdIn = flag.String("containerd-bin", "", "directory with containerd, containerd-shim-runc-v2 and ctr; empty: ours only")
	n            = flag.Int("n", 10, "running containers for the memory figure")
	runs         = flag.Int("runs", 20, "runs of /bin/true per runtime")
	restoreN     = flag.Int("restore", 100, "running containers restored by a new daemon (0: skip)")
	runtimeBin   = flag.String("runtime", "runc", "OCI runtime")
	hold         = flag.Bool("hold", false, "set up the registry, the image and our daemon, print their addresses, and wait for SIGINT (for profiling by hand)")
)

func main() {
	flag.Parse()
	if *binDir == "" {
		log.Fatal("-bin is required")
	}
	if os.Getuid() != 0 {
		log.Fatal("run as root: it runs containers")
	}
	defer cleanup()
	work, err := os.MkdirTemp("", "tasksbench")
	check(err)
	atCleanup(func() { os.RemoveAll(work) })
	rootfs := filepath.Join(work, "rootfs")
	check(benchimage.BuildRootfs(rootfs))
	reg := startRegistry(work)
	atCleanup(func() { reg.Process.Kill(); reg.Wait() })
	ref := pushImage(work, rootfs, reg.addr)

	fmt.Printf("# %s, %d containers, %d runs, runtime %s, image %s\n", time.Now().UTC().Format(time.RFC3339), *n, *runs, *runtimeBin, ref)
	ours := startOurs(work)
	ours.cli("pull", "-q", ref)
	if *hold {
		fmt.Printf("CRI_RUNTIME_ADDRESS=%s CRI_RUNTIME_NAMESPACE=bench; image %s; ^C ends\n", ours.address, ref)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return
	}
	var cd *containerd
	if *containerdIn != "" {
		cd = startContainerd(work)
		check(cd.ctr("images", "pull", "--plain-http", ref))
	}
	memory(ours, cd, ref)
	runToExit(work, rootfs, ours, cd, ref)
	if *restoreN > 0 {
		restore(ours, ref)
	}
}

// cleanups undo what the run made, last first: containers, daemons,
// registry, directories. A failure (fatalf) runs them too.
var (
	cleanups   []func()
	cleaningUp bool
)

func atCleanup(fn func()) { cleanups = append(cleanups, fn) }

type cleanupFailed struct{}

// cleanup runs the cleanups; one that fails does not stop the others.
func cleanup() {
	cleaningUp = true
	for i := len(cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(cleanupFailed); !ok {
						panic(r)
					}
				}
			}()
			cleanups[i]()
		}()
	}
	cleanups = nil
}

// fatalf reports a failure, cleans up and exits; within a cleanup it
// ends only that cleanup.
func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	if cleaningUp {
		panic(cleanupFailed{})
	}
	cleanup()
	os.Exit(1)
}

// memory starts n sleeping containers in each runtime and prints the
// PSS of the shims per container, at 1 and at n.
func memory(ours *ours, cd *containerd, ref string) {
	type figures struct{ pss1, rss1, pssN int }
	measure := func(start func(i int), shims func() (int, int)) figures {
		var f figures
		for i := 0; i < *n; i++ {
			start(i)
			if i == 0 {
				time.Sleep(time.Second)
				f.pss1, f.rss1 = shims()
			}
		}
		time.Sleep(time.Second)
		f.pssN, _ = shims()
		return f
	}
	own := measure(func(i int) { ours.cli("run", "-d", ref, fmt.Sprintf("own%d", i), "sleep", "100000") }, ours.shims)
	ours.removeAll()
	pod := measure(func(i int) {
		ours.cli("run", "-d", "--group", "pod", ref, fmt.Sprintf("pod%d", i), "sleep", "100000")
	}, ours.shims)
	ours.removeAll()
	line := func(name string, f figures) {
		fmt.Printf("%-44s PSS 1 container %s (RSS %s), %d containers %s: %s per container\n",
			name, kib(f.pss1), kib(f.rss1), *n, kib(f.pssN), kib(f.pssN / *n))
	}
	line("cri-runtime run -d (a shim per container):", own)
	line("cri-runtime run -d --group pod (one shim):", pod)
	if cd != nil {
		theirs := measure(func(i int) { check(cd.ctr("run", "-d", ref, fmt.Sprintf("sleep%d", i), "sleep", "100000")) }, cd.shims)
		cd.removeAll()
		line("ctr run -d (containerd-shim-runc-v2):", theirs)
		fmt.Printf("per-container PSS at %d, ours / containerd's: %.2f (a shim each), %.2f (one shim)\n", *n,
			float64(own.pssN)/float64(theirs.pssN), float64(pod.pssN)/float64(theirs.pssN))
	}
}

// runToExit times /bin/true in each runtime, alternating, and where the
// time of ours goes.
func runToExit(work, rootfs string, ours *ours, cd *containerd, ref string) {
	before := ours.rpcTimes()
	var bare, split, run, plain, cli, ctrRun, bareCrun, splitCrun, crun durations
	_, err := exec.LookPath("crun")
	withCrun := err == nil && *runtimeBin != "crun"
	for i := 0; i < *runs; i++ {
		bare = append(bare, runBare(work, rootfs, i, *runtimeBin))
		split = append(split, runSplit(work, rootfs, i, *runtimeBin))
		if withCrun {
			bareCrun = append(bareCrun, runBare(work, rootfs, i, "crun"))
			splitCrun = append(splitCrun, runSplit(work, rootfs, i, "crun"))
			start := time.Now()
			ours.cli("run", "--rm", "--seccomp=false", "--runtime", "crun", ref, fmt.Sprintf("crun%d", i), "true")
			crun = append(crun, time.Since(start))
		}
		start := time.Now()
		ours.cli("run", "--rm", ref, fmt.Sprintf("true%d", i), "true")
		run = append(run, time.Since(start))
		start = time.Now()
		ours.cli("run", "--rm", "--seccomp=false", ref, fmt.Sprintf("plain%d", i), "true")
		plain = append(plain, time.Since(start))
		start = time.Now()
		ours.cli("namespaces", "ls", "-q")
		cli = append(cli, time.Since(start))
		if cd != nil {
			start = time.Now()
			check(cd.ctr("run", "--rm", ref, fmt.Sprintf("true%d", i), "true"))
			ctrRun = append(ctrRun, time.Since(start))
		}
	}
	fmt.Printf("run-to-exit of /bin/true:\n")
	fmt.Printf("  bare %s run, read-only directory rootfs, no seccomp filter: %s\n", *runtimeBin, bare)
	fmt.Printf("  bare %s create, start, wait, delete (the split a shim drives; same rootfs): %s, +%s over bare\n", *runtimeBin, split, split.over(bare))
	fmt.Printf("  cri-runtime run --rm (overlay, shim start, default seccomp): %s, +%s over bare\n", run, run.over(bare))
	fmt.Printf("  cri-runtime run --rm --seccomp=false (no filter, as ctr): %s, +%s over bare\n", plain, plain.over(bare))
	if cd != nil {
		fmt.Printf("  ctr run --rm (overlay, shim start, no filter): %s, +%s over bare\n", ctrRun, ctrRun.over(bare))
	}
	if withCrun {
		fmt.Printf("  bare crun run, read-only directory rootfs, no seccomp filter: %s\n", bareCrun)
		fmt.Printf("  bare crun create, start, wait, delete: %s, +%s over bare crun\n", splitCrun, splitCrun.over(bareCrun))
		fmt.Printf("  cri-runtime run --rm --seccomp=false --runtime crun: %s, +%s over bare crun\n", crun, crun.over(bareCrun))
	}
	fmt.Printf("where the time of cri-runtime run --rm goes (every kind of run; means):\n")
	fmt.Printf("  %-52s %6.1f ms (p50)\n", "a CLI process with one call (namespaces ls)", ms(cli.median()))
	after := ours.rpcTimes()
	var methods []string
	for m := range after {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		// The calls every run made, and the namespaces ls of the CLI line
		// (means over every kind of run).
		a, b := after[m], before[m]
		if c := a.count - b.count; c >= float64(*runs) {
			fmt.Printf("  %-52s %6.1f ms\n", strings.TrimPrefix(m, "/cri_runtime.services."), (a.sum-b.sum)/c*1000)
		}
	}
}

// restore runs restoreN containers, kills the daemon, and times a new one
// from its start to the listing of every container.
func restore(ours *ours, ref string) {
	for i := 0; i < *restoreN; i++ {
		ours.cli("run", "-d", ref, fmt.Sprintf("r%d", i), "sleep", "100000")
	}
	ours.daemon.Process.Signal(syscall.SIGKILL)
	ours.daemon.Wait()
	start := time.Now()
	ours.start()
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	c, err := client.New(ctx, ours.address)
	check(err)
	list, err := c.Tasks().List(ctx)
	check(err)
	d := time.Since(start)
	c.Close()
	if len(list) != *restoreN {
		fatalf("restored %d tasks, want %d", len(list), *restoreN)
	}
	fmt.Printf("restore: %d running containers (a shim each), daemon start to all listed: %.0f ms (%s)\n",
		*restoreN, ms(d), ours.restoreLog())
	ours.removeAll()
}

// durations summarises timed runs.
type durations []time.Duration

func (d durations) median() time.Duration {
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (d durations) String() string {
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("p50 %.1f ms (min %.1f, max %.1f)", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}

func (d durations) over(base durations) string {
	return fmt.Sprintf("%.1f ms", ms(d.median()-base.median()))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func kib(k int) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

// ours is cri-runtime's daemon in the work directory, on a metrics port.
type ours struct {
	root, state, address, metrics string
	daemon                        *exec.Cmd
	log                           *bytes.Buffer
}

func startOurs(work string) *ours {
	state, err := os.MkdirTemp("", "tb") // short: shim sockets live there
	check(err)
	o := &ours{root: filepath.Join(work, "ours"), state: state, address: filepath.Join(state, "mgmt.sock"), metrics: freeAddr()}
	atCleanup(func() { os.RemoveAll(state) })
	o.start()
	atCleanup(o.stop)
	return o
}

func (o *ours) start() {
	o.log = &bytes.Buffer{}
	o.daemon = exec.Command(filepath.Join(*binDir, "cri-runtime"), "serve", "--root", o.root, "--state", o.state,
		"--address", o.address, "--metrics-address", o.metrics)
	o.daemon.Stderr = o.log
	check(o.daemon.Start())
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if c, err := client.New(ctx, o.address, client.WithConnectTimeout(time.Second)); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			fatalf("cri-runtime did not start:\n%s", o.log)
		}
	}
}

// cli runs the CLI in namespace bench.
func (o *ours) cli(args ...string) string {
	cmd := exec.Command(filepath.Join(*binDir, "cri-runtime"), append([]string{"--address", o.address, "-n", "bench"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		fatalf("cri-runtime %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func (o *ours) removeAll() {
	ids := strings.Fields(o.cli("containers", "ls", "-q"))
	if len(ids) > 0 {
		o.cli(append([]string{"containers", "rm", "--force"}, ids...)...)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pss, _ := o.shims(); pss == 0 {
			return
		}
	}
}

func (o *ours) stop() {
	defer func() { o.daemon.Process.Signal(syscall.SIGTERM); o.daemon.Wait() }()
	o.removeAll()
}

// shims sums the PSS and RSS of this daemon's shims, in KiB.
func (o *ours) shims() (pss, rss int) {
	return sumSmaps(func(cmdline []byte) bool {
		return bytes.Contains(cmdline, []byte("cri-runtime-shim\x00")) && bytes.Contains(cmdline, []byte(o.state+"/tasks\x00"))
	})
}

// restoreLog is the daemon's own account of its restore.
func (o *ours) restoreLog() string {
	for _, line := range strings.Split(o.log.String(), "\n") {
		if i := strings.Index(line, `"Tasks restored"`); i >= 0 {
			return "daemon log: " + strings.TrimSpace(line[i:])
		}
	}
	return "no restore line in the daemon's log"
}

// rpcTime is the sum and count of an RPC's handling times.
type rpcTime struct{ sum, count float64 }

// rpcTimes reads the daemon's handling-time histograms, by method.
func (o *ours) rpcTimes() map[string]rpcTime {
	resp, err := http.Get("http://" + o.metrics + "/metrics")
	check(err)
	defer resp.Body.Close()
	out := map[string]rpcTime{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, suffix := range []string{"_sum", "_count"} {
			prefix := "cri_runtime_grpc_server_handling_seconds" + suffix + `{code="OK",method="`
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			rest := strings.TrimPrefix(line, prefix)
			method, value, _ := strings.Cut(rest, `"} `)
			v, _ := strconv.ParseFloat(value, 64)
			t := out[method]
			if suffix == "_sum" {
				t.sum = v
			} else {
				t.count = v
			}
			out[method] = t
		}
	}
	return out
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().String()
}

// sumSmaps sums PSS and RSS (KiB) of the processes whose cmdline matches.
func sumSmaps(match func(cmdline []byte) bool) (pss, rss int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if !match(b) {
			continue
		}
		sm, err := os.ReadFile(filepath.Join(filepath.Dir(p), "smaps_rollup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(sm), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Pss:":
				pss += v
			case "Rss:":
				rss += v
			}
		}
	}
	return pss, rss
}
