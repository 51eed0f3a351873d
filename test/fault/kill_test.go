package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/overlay"
)

// kills is how many times TestKillUnderLoad kills the daemon: 20, or
// CRI_RUNTIME_FAULT_KILLS (the long mode runs 200).
func kills(t *testing.T) int {
	if v := os.Getenv("CRI_RUNTIME_FAULT_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CRI_RUNTIME_FAULT_KILLS=%q: %v", v, err)
		}
		return n
	}
	return 20
}

// TestKillUnderLoad kills the daemon with SIGKILL at random points while
// clients run pods through it the way kubelet does, restarts it, and
// checks each time that the database is consistent and that every pod and
// container the daemon reported created still exists; kubelet-style
// retries of the interrupted calls must succeed. At the end, with
// everything removed, nothing may be left (the node's cleanup checks
// netns, IPs, veths, mounts and shims; this test the snapshots, leases
// and ingests).
func TestKillUnderLoad(t *testing.T) {
	clients := 50
	if testing.Short() {
		clients = 10
	}
	// The pods' own cgroup parent: a cgroup of a container no call
	// reported (a create cut by a kill) is found under it.
	parent := crinode.CgroupParent(t, "kill")
	n := crinode.New(t, "")
	ctx := context.Background()
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	l := &ledger{pods: map[string]bool{}, ctrs: map[string]bool{}, cgroupParent: parent}
	l.lastKill.Store(time.Now().UnixNano()) // the bound of the first retries
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := podRound(n, l, fmt.Sprintf("k%d-%d", c, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	total, survived := kills(t), 0
	for k := 0; k < total; k++ {
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		n.Kill9()
		l.lastKill.Store(time.Now().UnixNano())
		checkOffline(t, n.Root())
		n.Start()
		l.check(t, n)
		if len(errs) > 0 || t.Failed() {
			t.Errorf("after kill %d: a client failed or a check did", k+1)
			break
		}
		survived++
	}
	// The clients stop before anything is removed: a client still making
	// pods would make leaks of its own.
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d of %d kills survived; %d pods and %d containers made", survived, total, l.podsMade, l.ctrsMade)
	removeAll(t, n)
	n.Stop()
	checkLeftovers(t, n.Root())
	crinode.CheckCgroups(t, l.all)
	crinode.CheckCgroupParent(t, parent)
}

// ledger is what the daemon reported: pods and containers made and not
// yet removed (true), by ID.
type ledger struct {
	mu                 sync.Mutex
	pods, ctrs         map[string]bool
	podsMade, ctrsMade int
	all                []string // every ID ever reported made
	cgroupParent       string   // of every pod
	// lastKill is when the daemon was last killed (Unix nanoseconds):
	// retries go on, as kubelet's do, until 2 minutes after it.
	lastKill atomic.Int64
}

func (l *ledger) set(m map[string]bool, id string, live bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if live {
		m[id] = true
		l.all = append(l.all, id)
	} else {
		delete(m, id)
	}
}

// check asks the restarted daemon for every pod and container it reported
// made and that was not removed since.
func (l *ledger) check(t *testing.T, n *crinode.Node) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	pods, ctrs := keys(l.pods), keys(l.ctrs)
	l.mu.Unlock()
	for _, id := range pods {
		if _, err := n.Runtime().PodSandboxStatus(ctx, id, false); status.Code(cause(err)) == codes.NotFound {
			// It may have been removed by its client just now.
			if l.live(l.pods, id) {
				t.Errorf("pod %s, reported made, is gone after a restart", id)
			}
		}
	}
	for _, id := range ctrs {
		if _, err := n.Runtime().ContainerStatus(ctx, id, false); status.Code(cause(err)) == codes.NotFound {
			if l.live(l.ctrs, id) {
				t.Errorf("container %s, reported made, is gone after a restart", id)
			}
		}
	}
}

func (l *ledger) live(m map[string]bool, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return m[id]
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// podRound is one pod's life, as kubelet runs it, each call retried while
// the daemon is down or its deadline ends (kubelet retries forever; two
// minutes here).
func podRound(n *crinode.Node, l *ledger, name string) error {
	ctx := context.Background()
	pc := n.PodConfig(name)
	pc.Linux.CgroupParent = l.cgroupParent
	var podID string
	if err := l.retry(func() (err error) {
		podID, err = n.Runtime().RunPodSandbox(ctx, pc, "")
		return err
	}); err != nil {
		return fmt.Errorf("%s: RunPodSandbox: %w", name, err)
	}
	l.set(l.pods, podID, true)
	l.mu.Lock()
	l.podsMade++
	l.mu.Unlock()
	// kubelet pulls the image before it creates the container (this one
	// is present: the pull resolves it at the registry again).
	if err := l.retry(func() error {
		_, err := n.Images().PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, pc)
		return err
	}); err != nil {
		return fmt.Errorf("%s: PullImage: %w", name, err)
	}
	var ctrID string
	if err := l.retry(func() (err error) {
		ctrID, err = n.Runtime().CreateContainer(ctx, podID, n.ContainerConfig("c", "sleep", "3600"), pc)
		return err
	}); err != nil {
		return fmt.Errorf("%s: CreateContainer: %w", name, err)
	}
	l.set(l.ctrs, ctrID, true)
	l.mu.Lock()
	l.ctrsMade++
	l.mu.Unlock()
	if err := l.retry(func() error {
		err := n.Runtime().StartContainer(ctx, ctrID)
		if status.Code(cause(err)) == codes.FailedPrecondition {
			// A start the daemon did before it was killed: kubelet
			// would see the container running.
			st, serr := n.Runtime().ContainerStatus(ctx, ctrID, false)
			if serr == nil && st.GetStatus().GetState() == runtime.ContainerState_CONTAINER_RUNNING {
				return nil
			}
		}
		return err
	}); err != nil {
		return fmt.Errorf("%s: StartContainer: %w", name, err)
	}
	if err := l.retry(func() error {
		_, _, err := n.Runtime().ExecSync(ctx, ctrID, []string{"true"}, 10*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("%s: ExecSync: %w", name, err)
	}
	if err := l.retry(func() error { return n.Runtime().StopPodSandbox(ctx, podID) }); err != nil {
		return fmt.Errorf("%s: StopPodSandbox: %w", name, err)
	}
	// From here on the pod and its container may be gone at any time.
	l.set(l.ctrs, ctrID, false)
	l.set(l.pods, podID, false)
	if err := l.retry(func() error { return n.Runtime().RemovePodSandbox(ctx, podID) }); err != nil {
		return fmt.Errorf("%s: RemovePodSandbox: %w", name, err)
	}
	return nil
}

// retry calls fn until it succeeds or fails with something else than the
// daemon being away (Unavailable, a deadline, a cancellation), as kubelet
// does: with a kill every second or so under 50 clients, one call can miss
// many daemons in a row, so the bound is 2 minutes after the last kill.
func (l *ledger) retry(fn func() error) error {
	for {
		err := fn()
		switch status.Code(cause(err)) {
		case codes.OK:
			return nil
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			last := time.Unix(0, l.lastKill.Load())
			if time.Since(last) > 2*time.Minute {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		default:
			return err
		}
	}
}

// cause returns the gRPC status error inside err.
func cause(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}

// removeAll stops and removes every pod, as a drain does.
func removeAll(t *testing.T, n *crinode.Node) {
	ctx := context.Background()
	pods, err := n.Runtime().ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := n.Runtime().StopPodSandbox(ctx, p.Id); err != nil {
			t.Error(err)
		}
		if err := n.Runtime().RemovePodSandbox(ctx, p.Id); err != nil {
			t.Error(err)
		}
	}
}

// openRoot opens the database of a daemon that is not running, with its
// backends, for a look.
func openRoot(t *testing.T, root string) (*meta.DB, func()) {
	t.Helper()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sns := map[string]snapshot.Snapshotter{}
	nat, err := native.NewSnapshotter(filepath.Join(root, "snapshots", "native"))
	if err != nil {
		t.Fatal(err)
	}
	sns["native"] = nat
	ov, err := overlay.NewSnapshotter(filepath.Join(root, "snapshots", "overlayfs"))
	if err != nil {
		t.Fatal(err)
	}
	sns["overlayfs"] = ov
	p := gc.DefaultPolicy()
	p.StartupDelay, p.MutationThreshold, p.DeletionThreshold = gc.Duration(time.Hour), 0, 1<<30
	db, err := meta.Open(context.Background(), filepath.Join(root, "meta.db"), cs, sns, meta.WithGCPolicy(p))
	if err != nil {
		t.Fatal(err)
	}
	return db, func() {
		db.Close()
		nat.Close()
		ov.Close()
	}
}

// checkOffline runs meta's Check on the root of a killed daemon.
func checkOffline(t *testing.T, root string) {
	t.Helper()
	db, done := openRoot(t, root)
	defer done()
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("meta check after a kill: %v", err)
	}
}

// checkLeftovers checks the root of a stopped daemon whose pods were all
// removed: no sandbox or container left, no lease, no ingest, and no
// snapshot but the images' committed layers.
func checkLeftovers(t *testing.T, root string) {
	t.Helper()
	db, done := openRoot(t, root)
	defer done()
	ctx := namespaces.WithNamespace(context.Background(), namespaces.K8s)
	if _, err := db.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	if sbs, _ := db.Sandboxes().List(ctx); len(sbs) > 0 {
		t.Errorf("%d sandbox records left", len(sbs))
	}
	if cs, _ := db.Containers().List(ctx); len(cs) > 0 {
		t.Errorf("%d container records left", len(cs))
	}
	// The leases of pulls a kill interrupted stay on purpose, bounded:
	// the next pull reuses what they hold (keep_failed_pull, 1 h).
	ls, _ := db.Leases().List(ctx)
	for _, l := range ls {
		if _, pull := l.Labels["cri-runtime.io/pull"]; !pull || l.ExpiresAt.IsZero() || time.Until(l.ExpiresAt) > time.Hour {
			t.Errorf("lease left: %+v", l)
		}
	}
	if sts, _ := db.ContentStore().ListStatuses(ctx); len(sts) > 0 && len(ls) == 0 {
		t.Errorf("ingests left: %+v", sts)
	}
	for _, name := range db.Snapshotters() {
		_ = db.Snapshotter(name).Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			if info.Kind != snapshot.KindCommitted {
				t.Errorf("snapshot %s/%s (%s) left", name, info.Name, info.Kind)
			}
			return nil
		})
	}
}
