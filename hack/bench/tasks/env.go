package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/hack/bench/internal/benchimage"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// registry is a docker-registry on loopback.
type registry struct {
	*exec.Cmd
	addr string
}

func startRegistry(work string) *registry {
	dir := filepath.Join(work, "registry")
	check(os.MkdirAll(filepath.Join(dir, "data"), 0o700))
	r := &registry{addr: freeAddr()}
	config := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n",
		filepath.Join(dir, "data"), r.addr)
	check(os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600))
	r.Cmd = exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	check(r.Start())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			fatalf("docker-registry did not start")
		}
	}
}

// pushImage writes rootfs as a one-layer OCI image and pushes it with
// skopeo; it returns the reference.
func pushImage(work, rootfs, host string) string {
	layout := filepath.Join(work, "oci")
	check(writeOCILayout(layout, rootfs))
	ref := host + "/bench/busybox:latest"
	out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":latest", "docker://"+ref).CombinedOutput()
	if err != nil {
		fatalf("skopeo copy: %v: %s", err, out)
	}
	return ref
}

// writeOCILayout writes an OCI image layout of one uncompressed layer
// holding rootfs, tagged latest.
func writeOCILayout(dir, rootfs string) error {
	layer, err := benchimage.TarDir(rootfs)
	if err != nil {
		return err
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	add := func(b []byte) (string, error) {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		return "sha256:" + d, os.WriteFile(filepath.Join(blobs, d), b, 0o644)
	}
	desc := func(mt, d string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": d, "size": len(b)}
	}
	layerDigest, err := add(layer)
	if err != nil {
		return err
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	configDigest, err := add(config)
	if err != nil {
		return err
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", configDigest, config),
		"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layerDigest, layer)},
	})
	manifestDigest, err := add(manifest)
	if err != nil {
		return err
	}
	m := desc("application/vnd.oci.image.manifest.v1+json", manifestDigest, manifest)
	m["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "latest"}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{m}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// bareBundle writes the bundle WORK/NAME of the container NAME<i>, which
// runs /bin/true in the rootfs, read-only.
func bareBundle(work, rootfs, name string, i int) (bundle, id string) {
	bundle = filepath.Join(work, name)
	check(os.MkdirAll(bundle, 0o755))
	id = fmt.Sprintf("%s%d", name, i)
	spec := tasktest.Spec(id, "true")
	spec.Root = &specs.Root{Path: rootfs, Readonly: true}
	b, _ := json.Marshal(spec)
	check(os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644))
	return bundle, id
}

// runBare times `<runtime> run` of /bin/true in the rootfs, read-only.
func runBare(work, rootfs string, i int, runtime string) time.Duration {
	bundle, id := bareBundle(work, rootfs, "bare", i)
	start := time.Now()
	cmd := exec.Command(runtime, "--root", filepath.Join(work, "bare-root-"+runtime), "run", "--bundle", bundle, id)
	if out, err := cmd.CombinedOutput(); err != nil {
		fatalf("%s run: %v: %s", runtime, err, out)
	}
	return time.Since(start)
}

// runSplit runs /bin/true in the same bundle as runBare, but as a shim
// must drive the runtime through go-runc for the CRI's separate create and
// start: `create`, `start`, a wait for the exit as the container's
// subreaper, and `delete`, each its own runtime process. What it takes
// over runBare is the floor of that split, with nothing of ours in it.
func runSplit(work, rootfs string, i int, runtime string) time.Duration {
	bundle, id := bareBundle(work, rootfs, "split", i)
	pidFile := filepath.Join(bundle, "pid")
	os.Remove(pidFile)
	root := filepath.Join(work, "split-root-"+runtime)
	// The output goes to a file: the container inherits create's stdio,
	// and a pipe would hold create's caller until the container exits.
	out, err := os.Create(filepath.Join(bundle, "output"))
	check(err)
	defer out.Close()
	rt := func(args ...string) {
		cmd := exec.Command(runtime, append([]string{"--root", root}, args...)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(out.Name())
			fatalf("%s %s: %v: %s", runtime, args[0], err, b)
		}
	}
	// The container runc create leaves behind is the bench's to reap, as
	// a shim's are its; only while this runs, so no daemon's orphan is.
	check(unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	start := time.Now()
	rt("create", "--bundle", bundle, "--pid-file", pidFile, id)
	b, err := os.ReadFile(pidFile)
	check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	check(err)
	rt("start", id)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		fatalf("wait for %s's container: %v", runtime, err)
	}
	rt("delete", id)
	return time.Since(start)
}

// containerd is containerd's daemon on its own socket.
type containerd struct {
	daemon *exec.Cmd
	sock   string
}

func startContainerd(work string) *containerd {
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
	atCleanup(cd.stop)
	for deadline := time.Now().Add(10 * time.Second); cd.ctr("version") != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			fatalf("containerd did not start")
		}
	}
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

// removeAll kills and removes every container of namespace bench.
func (cd *containerd) removeAll() {
	out, err := exec.Command(filepath.Join(*containerdIn, "ctr"), "-a", cd.sock, "-n", "bench", "containers", "ls", "-q").Output()
	check(err)
	for _, id := range strings.Fields(string(out)) {
		_ = cd.ctr("tasks", "kill", "-s", "SIGKILL", id)
		for deadline := time.Now().Add(10 * time.Second); cd.ctr("tasks", "delete", id) != nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		check(cd.ctr("containers", "delete", id))
	}
}

func (cd *containerd) stop() {
	defer func() { cd.daemon.Process.Signal(syscall.SIGTERM); cd.daemon.Wait() }()
	cd.removeAll()
}

// shims sums the PSS and RSS (KiB) of this containerd's shims.
func (cd *containerd) shims() (pss, rss int) {
	return sumSmaps(func(cmdline []byte) bool {
		return bytes.Contains(cmdline, []byte("containerd-shim-runc-v2")) && bytes.Contains(cmdline, []byte(cd.sock))
	})
}
