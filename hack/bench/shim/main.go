// Command shim measures cri-runtime's shim against containerd's, side by
// side in one run (hack/bench/shim/run.sh):
//
//   - the PSS of the shims holding 1 and N running busybox containers
//     (/proc/PID/smaps_rollup), per container;
//   - run-to-exit of /bin/true: create, start, wait, delete, into a group
//     whose shim runs (a pod's next container) and into a new group (shim
//     start included), against bare `runc run` and `ctr run --rm`.
//
// containerd runs with its own root, state and socket, never as a system
// service; its binaries come from -containerd-bin (containerd,
// containerd-shim-runc-v2, ctr).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/hack/bench/internal/benchimage"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

var (
	shimBin      = flag.String("shim", "", "cri-runtime-shim binary (required)")
	containerdIn = flag.String("containerd-bin", "", "directory with containerd, containerd-shim-runc-v2 and ctr; empty: ours only")
	n            = flag.Int("n", 10, "containers for the memory figure")
	runs         = flag.Int("runs", 20, "runs of /bin/true per runtime")
	runtimeBin   = flag.String("runtime", "runc", "OCI runtime")
	restoreN     = flag.Int("restore", 0, "also time Restore of this many running containers (0: skip)")
	perGroup     = flag.Int("restore-per-group", 1, "containers per group (pod) for -restore")
)

func main() {
	flag.Parse()
	if *shimBin == "" {
		log.Fatal("-shim is required")
	}
	work, err := os.MkdirTemp("", "shimbench")
	check(err)
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	check(benchimage.BuildRootfs(rootfs))

	fmt.Printf("# %s, %d containers, %d runs, runtime %s\n", time.Now().UTC().Format(time.RFC3339), *n, *runs, *runtimeBin)
	ours := startOurs(work, rootfs)
	defer ours.stop()
	var cd *containerd
	if *containerdIn != "" {
		cd = startContainerd(work, rootfs)
		defer cd.stop()
	}
	// The runs alternate between the runtimes, so that a busy moment of
	// the host weighs on all of them.
	var bare, plain, overlay, fresh, ctrRun durations
	for i := 0; i < *runs; i++ {
		bare = append(bare, runBare(work, rootfs, i))
		plain = append(plain, ours.run("pod", fmt.Sprintf("plain%d", i), true))
		overlay = append(overlay, ours.run("pod", fmt.Sprintf("overlay%d", i), false))
		fresh = append(fresh, ours.run(fmt.Sprintf("new%d", i), fmt.Sprintf("new%d", i), false))
		if cd != nil {
			ctrRun = append(ctrRun, cd.run(i))
		}
	}
	fmt.Printf("cri-runtime shim: PSS 1 container %s (RSS %s), %d containers %s (%s per container)\n",
		kib(ours.pss1), kib(ours.rss1), *n, kib(ours.pssN), kib(ours.pssN / *n))
	if cd != nil {
		fmt.Printf("containerd shims: PSS 1 container %s (RSS %s), %d containers %s (%s per container)\n",
			kib(cd.pss1), kib(cd.rss1), *n, kib(cd.pssN), kib(cd.pssN / *n))
		fmt.Printf("per-container PSS at %d, ours / containerd's: %.2f\n", *n, float64(ours.pssN)/float64(cd.pssN))
	}
	if *restoreN > 0 {
		d := benchRestore(work, rootfs)
		fmt.Printf("Restore of %d running containers in %d groups (shims) by a new Manager: %.1f ms\n", *restoreN, (*restoreN+*perGroup-1) / *perGroup, ms(d))
	}
	fmt.Printf("run-to-exit of /bin/true (create, start, wait, delete):\n")
	fmt.Printf("  bare %s run, read-only directory rootfs:   %s\n", *runtimeBin, bare)
	fmt.Printf("  cri-runtime, pod's shim running, same rootfs: %s, +%s over bare\n", plain, plain.over(bare))
	fmt.Printf("  cri-runtime, pod's shim running, overlay:     %s, +%s over bare\n", overlay, overlay.over(bare))
	fmt.Printf("  cri-runtime, new group (shim start), overlay: %s, +%s over bare\n", fresh, fresh.over(bare))
	if cd != nil {
		fmt.Printf("  ctr run --rm (shim start, overlay snapshot):  %s, +%s over bare\n", ctrRun, ctrRun.over(bare))
	}
}

type result struct {
	pss1, pssN, rss1    int
	runExisting, runNew durations
}

// durations summarises timed runs.
type durations []time.Duration

func (d durations) median() time.Duration {
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (d durations) String() string {
	if len(d) == 0 {
		return "-"
	}
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
		log.Fatal(err)
	}
}

// ours is cri-runtime's side: a Manager and a pod's shim holding n
// sleeping containers.
type ours struct {
	work, rootfs, state string
	m                   *task.Manager
	ctx                 context.Context
	tasks               []*task.Task
	pss1, pssN, rss1    int
}

func startOurs(work, rootfs string) *ours {
	state, err := os.MkdirTemp("", "sb")
	check(err)
	m, err := task.NewManager(task.Config{StateDir: state, ShimBinary: *shimBin})
	check(err)
	o := &ours{work: work, rootfs: rootfs, state: state, m: m, ctx: namespaces.WithNamespace(context.Background(), "bench")}
	for i := 0; i < *n; i++ {
		tk := o.create("pod", fmt.Sprintf("sleep%d", i), false, "sleep", "100000")
		_, err := tk.Start(o.ctx)
		check(err)
		o.tasks = append(o.tasks, tk)
		if i == 0 {
			time.Sleep(time.Second)
			o.pss1, o.rss1 = smaps(shimPid(state, "bench", "pod"))
		}
	}
	time.Sleep(time.Second)
	o.pssN, _ = smaps(shimPid(state, "bench", "pod"))
	return o
}

func (o *ours) run(group, id string, plain bool) time.Duration {
	start := time.Now()
	tk := o.create(group, id, plain, "true")
	_, err := tk.Start(o.ctx)
	check(err)
	_, err = tk.Wait(o.ctx)
	check(err)
	_, err = tk.Delete(o.ctx)
	check(err)
	return time.Since(start)
}

func (o *ours) stop() {
	for _, tk := range o.tasks {
		check(tk.Kill(o.ctx, syscall.SIGKILL, task.KillOpts{}))
		_, err := tk.Wait(o.ctx)
		check(err)
		_, err = tk.Delete(o.ctx)
		check(err)
	}
	o.m.Close()
	os.RemoveAll(o.state)
}

// create makes a container with an overlay rootfs over the busybox
// directory, or (plain) with that directory as its read-only root, as the
// bare runc run has it.
func (o *ours) create(group, id string, plain bool, args ...string) *task.Task {
	dir := filepath.Join(o.work, "ours", id)
	spec := tasktest.Spec(id, args...)
	opts := task.CreateOpts{ID: id, Runtime: *runtimeBin, IO: task.IO{LogPath: filepath.Join(dir, "log")}}
	if plain {
		check(os.MkdirAll(dir, 0o755))
		spec.Root = &specs.Root{Path: o.rootfs, Readonly: true}
	} else {
		upper, wd := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		check(os.MkdirAll(upper, 0o755))
		check(os.MkdirAll(wd, 0o755))
		opts.Rootfs = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + o.rootfs, "upperdir=" + upper, "workdir=" + wd}}}
	}
	opts.Spec, _ = json.Marshal(spec)
	tk, err := o.m.Create(o.ctx, group, opts)
	check(err)
	return tk
}

// benchRestore starts restoreN containers, replaces the Manager as a
// daemon restart does, and times NewManager plus Restore.
func benchRestore(work, rootfs string) time.Duration {
	o := startOursEmpty(work, rootfs)
	for i := 0; i < *restoreN; i++ {
		tk := o.create(fmt.Sprintf("rpod%d", i / *perGroup), fmt.Sprintf("r%d", i), false, "sleep", "100000")
		_, err := tk.Start(o.ctx)
		check(err)
	}
	o.m.Close()
	start := time.Now()
	m, err := task.NewManager(task.Config{StateDir: o.state, ShimBinary: *shimBin})
	check(err)
	states, err := m.Restore(o.ctx)
	check(err)
	d := time.Since(start)
	if len(states) != *restoreN {
		log.Fatalf("restored %d tasks, want %d", len(states), *restoreN)
	}
	o.m = m
	for _, st := range states {
		tk, err := m.Get(o.ctx, st.ID)
		check(err)
		o.tasks = append(o.tasks, tk)
	}
	o.stop()
	return d
}

func startOursEmpty(work, rootfs string) *ours {
	state, err := os.MkdirTemp("", "sr")
	check(err)
	m, err := task.NewManager(task.Config{StateDir: state, ShimBinary: *shimBin})
	check(err)
	return &ours{work: work, rootfs: rootfs, state: state, m: m, ctx: namespaces.WithNamespace(context.Background(), "bench")}
}

func shimPid(state, ns, group string) int {
	b, err := os.ReadFile(filepath.Join(shimapi.GroupDir(state, ns, group), shimapi.PidFile))
	check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	check(err)
	return pid
}

// smaps returns the PSS and RSS of pid, in KiB.
func smaps(pid int) (pss, rss int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Pss:":
				pss = v
			case "Rss:":
				rss = v
			}
		}
	}
	return pss, rss
}

func runBare(work, rootfs string, i int) time.Duration {
	bundle := filepath.Join(work, "bare")
	check(os.MkdirAll(bundle, 0o755))
	id := fmt.Sprintf("bare%d", i)
	spec := tasktest.Spec(id, "true")
	spec.Root = &specs.Root{Path: rootfs, Readonly: true}
	b, _ := json.Marshal(spec)
	check(os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644))
	start := time.Now()
	cmd := exec.Command(*runtimeBin, "--root", filepath.Join(work, "bare-root"), "run", "--bundle", bundle, id)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s run: %v: %s", *runtimeBin, err, out)
	}
	return time.Since(start)
}

// containerd is containerd's side: its daemon on its own socket, with n
// sleeping containers started by ctr run -d.
type containerd struct {
	daemon           *exec.Cmd
	sock             string
	ids              []string
	pss1, pssN, rss1 int
}

func startContainerd(work, rootfs string) *containerd {
	dir := filepath.Join(work, "containerd")
	cd := &containerd{sock: filepath.Join(dir, "containerd.sock")}
	config := filepath.Join(dir, "config.toml")
	check(os.MkdirAll(dir, 0o700))
	check(os.WriteFile(config, []byte(fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), cd.sock)), 0o600))
	cd.daemon = exec.Command(filepath.Join(*containerdIn, "containerd"), "--config", config)
	cd.daemon.Env = append(os.Environ(), "PATH="+*containerdIn+":"+os.Getenv("PATH"))
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	check(err)
	cd.daemon.Stdout, cd.daemon.Stderr = logf, logf
	check(cd.daemon.Start())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cd.ctr("version") == nil {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("containerd did not start")
		}
	}
	imageTar := filepath.Join(dir, "busybox.tar")
	check(writeOCIImage(imageTar, rootfs, "bench/busybox:latest"))
	check(cd.ctr("images", "import", imageTar))
	for i := 0; i < *n; i++ {
		id := fmt.Sprintf("sleep%d", i)
		check(cd.ctr("run", "-d", "bench/busybox:latest", id, "sleep", "100000"))
		cd.ids = append(cd.ids, id)
		if i == 0 {
			time.Sleep(time.Second)
			cd.pss1, cd.rss1 = containerdShims(cd.sock)
		}
	}
	time.Sleep(time.Second)
	cd.pssN, _ = containerdShims(cd.sock)
	return cd
}

func (cd *containerd) ctr(args ...string) error {
	cmd := exec.Command(filepath.Join(*containerdIn, "ctr"), append([]string{"-a", cd.sock, "-n", "bench"}, args...)...)
	cmd.Env = cd.daemon.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (cd *containerd) run(i int) time.Duration {
	start := time.Now()
	check(cd.ctr("run", "--rm", "bench/busybox:latest", fmt.Sprintf("true%d", i), "true"))
	return time.Since(start)
}

func (cd *containerd) stop() {
	for _, id := range cd.ids {
		check(cd.ctr("tasks", "kill", "-s", "SIGKILL", id))
		for cd.ctr("tasks", "delete", id) != nil {
			time.Sleep(50 * time.Millisecond)
		}
		check(cd.ctr("containers", "delete", id))
	}
	cd.daemon.Process.Signal(syscall.SIGTERM)
	cd.daemon.Wait()
}

// containerdShims sums the PSS and RSS of the shims of the containerd
// listening at sock.
func containerdShims(sock string) (pss, rss int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("containerd-shim-runc-v2")) && bytes.Contains(b, []byte(sock)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			ps, rs := smaps(pid)
			pss, rss = pss+ps, rss+rs
		}
	}
	return pss, rss
}

// writeOCIImage writes an OCI image archive of one uncompressed layer
// holding rootfs, named name, for `ctr images import`.
func writeOCIImage(path, rootfs, name string) error {
	layer, err := benchimage.TarDir(rootfs)
	if err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(b []byte) string {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		blobs[d] = b
		return d
	}
	layerDigest := add(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerDigest}},
	})
	configDigest := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + configDigest, "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + layerDigest, "size": len(layer)}},
	})
	manifestDigest := add(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifestDigest, "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
		}},
	})
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index}
	for d, b := range blobs {
		files["blobs/sha256/"+d] = b
	}
	return writeTar(path, files)
}

// writeTar writes files (name → content) as a tar archive at path.
func writeTar(path string, files map[string][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	out := tar.NewWriter(f)
	for name, b := range files {
		if err := out.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return out.Close()
}
