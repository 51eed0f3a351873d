package fault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// settleTimeout bounds the wait for the collector to remove what a
// refused pull or create left under its dropped lease.
const settleTimeout = 30 * time.Second

// hostileNode is a daemon under attack: the node, its management API in
// the CRI's namespace, and a host the attacks aim at. The host is a
// directory outside the daemon's root with a sentinel file in it, and an
// absolute path under /tmp that must never come to exist.
type hostileNode struct {
	*crinode.Node
	mgmt     *client.Client
	ctx      context.Context // in the CRI's namespace, k8s.io
	host     string          // the attacked directory
	sentinel string          // host/sentinel
	escape   string          // /tmp/cri-hostile-<random>: must never exist
	pid      int             // the daemon's
	liar     *liar           // a registry that lies, beside the node's own
}

const sentinelContent = "host file: no image may change or read it\n"

func newHostileNode(t *testing.T) *hostileNode {
	t.Helper()
	n := crinode.New(t, "")
	h := &hostileNode{Node: n, host: filepath.Join(t.TempDir(), "host"), liar: newLiar(t)}
	var b [8]byte
	_, _ = rand.Read(b[:])
	h.escape = "/tmp/cri-hostile-" + hex.EncodeToString(b[:])
	h.sentinel = filepath.Join(h.host, "sentinel")
	if err := os.Mkdir(h.host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.sentinel, []byte(sentinelContent), 0o644); err != nil {
		t.Fatal(err)
	}
	// A user database an image might try to borrow from the host.
	if err := os.WriteFile(filepath.Join(h.host, "passwd"), []byte("hostuser:x:4242:4242::/host:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.host, "group"), []byte("hostgroup:x:4343:hostuser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.New(ctx, filepath.Join(n.SockDir, "mgmt.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.mgmt, h.ctx = c, namespaces.WithNamespace(ctx, "k8s.io")
	h.pid = h.daemonPID(t)
	return h
}

// daemonPID finds the daemon by the config file on its command line.
func (h *hostileNode) daemonPID(t *testing.T) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "serve\x00--config\x00"+filepath.Join(h.Dir, "config.toml")) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	t.Fatal("daemon process not found")
	return 0
}

// rss is the daemon's resident set, in bytes.
func (h *hostileNode) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.pid))
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// intact fails the test when the host changed or the daemon stopped
// serving: the sentinel keeps its content, mode and link count, nothing
// appeared in the host directory, the escape path does not exist, and
// the same daemon answers the CRI.
func (h *hostileNode) intact(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(h.sentinel)
	if err != nil || string(b) != sentinelContent {
		t.Fatalf("host sentinel changed: %q, %v", b, err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(h.sentinel, &st); err != nil || st.Mode != syscall.S_IFREG|0o644 || st.Nlink != 1 {
		t.Fatalf("host sentinel: mode %o, %d links, %v", st.Mode, st.Nlink, err)
	}
	names, err := os.ReadDir(h.host)
	if err != nil || len(names) != 3 {
		t.Fatalf("host directory now holds %v, %v", names, err)
	}
	if _, err := os.Lstat(h.escape); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists: %v", h.escape, err)
	}
	if _, err := h.RT.Version(context.Background(), "v1"); err != nil {
		t.Fatalf("daemon does not answer: %v\n%s", err, h.Logs())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.pid)); err != nil {
		t.Fatalf("daemon %d is gone:\n%s", h.pid, h.Logs())
	}
}

// daemonState is what a refused attack must leave as it found: leases,
// ingests, snapshots, blobs, images, containers, pods and mounts.
type daemonState struct {
	Leases, Ingests, Snapshots, Blobs, Images, Containers, Pods, Mounts []string
}

func (h *hostileNode) state(t *testing.T) daemonState {
	t.Helper()
	var s daemonState
	ls, err := h.mgmt.Leases().List(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		s.Leases = append(s.Leases, l.ID)
	}
	cs := h.mgmt.ContentStore()
	st, err := cs.ListStatuses(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range st {
		s.Ingests = append(s.Ingests, i.Ref)
	}
	if err := cs.Walk(h.ctx, func(i content.Info) error { s.Blobs = append(s.Blobs, i.Digest.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	err = h.mgmt.Snapshotter("overlayfs").Walk(h.ctx, func(_ context.Context, i snapshot.Info) error {
		s.Snapshots = append(s.Snapshots, fmt.Sprintf("%s(%v)", i.Name, i.Kind))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := h.mgmt.Images().List(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		s.Images = append(s.Images, i.Name)
	}
	ctrs, err := h.RT.ListContainers(h.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		s.Containers = append(s.Containers, c.Id)
	}
	pods, err := h.RT.ListPodSandbox(h.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		s.Pods = append(s.Pods, p.Id)
	}
	s.Mounts = append(crinode.MountsUnder(t, h.Dir), crinode.MountsUnder(t, h.SockDir)...)
	for _, l := range [][]string{s.Leases, s.Ingests, s.Snapshots, s.Blobs, s.Images, s.Containers, s.Pods, s.Mounts} {
		slices.Sort(l)
	}
	return s
}

// settle waits until the daemon's state is want again: the collector
// removes what a refused pull or create held under its lease soon after
// the lease is dropped.
func (h *hostileNode) settle(t *testing.T, want daemonState) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		got := h.state(t)
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind:\n got %+v\nwant %+v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wantCode fails unless err is a gRPC error of code whose message says
// want.
func wantCode(t *testing.T, what string, err error, code codes.Code, want string) {
	t.Helper()
	s, _ := status.FromError(unwrapStatus(err))
	if err == nil || s.Code() != code || !strings.Contains(s.Message(), want) {
		t.Fatalf("%s: %v; want %v saying %q", what, err, code, want)
	}
	t.Logf("%s: %v: %s", what, s.Code(), s.Message())
}

// unwrapStatus finds the gRPC status in the errors k8s.io/cri-client
// wraps.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}

// pull pulls ref through the CRI, as kubelet does for a pod.
func (h *hostileNode) pull(ref string) error {
	_, err := h.Img.PullImage(context.Background(), &runtime.ImageSpec{Image: ref}, nil, h.PodConfig("hostile"))
	return err
}

// removeImage removes ref through the CRI.
func (h *hostileNode) removeImage(t *testing.T, ref string) {
	t.Helper()
	if err := h.Img.RemoveImage(context.Background(), &runtime.ImageSpec{Image: ref}); err != nil {
		t.Fatalf("remove %s: %v", ref, err)
	}
}
