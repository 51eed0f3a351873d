package service

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// fourLayers is an image of three small layers and a larger last one.
func fourLayers(t *testing.T) (imagetest.Built, []imagetest.Layer) {
	t.Helper()
	ls := []imagetest.Layer{randomLayer(t, 256<<10), randomLayer(t, 256<<10), randomLayer(t, 256<<10), randomLayer(t, 2<<20)}
	return imagetest.Image{Layers: ls}.Build(t), ls
}

// waitCommitted returns once the blobs are committed in e's namespace.
func waitCommitted(t *testing.T, e *testEnv, descs ...ocispec.Descriptor) {
	t.Helper()
	for _, d := range descs {
		for {
			if _, err := e.DB.ContentStore().Info(e.ctx, d.Digest); err == nil {
				break
			}
			if e.ctx.Err() != nil {
				t.Fatalf("blob %s never committed", d.Digest)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitUnpacked returns once the snapshots of the first n layers of ls are
// committed in e's namespace.
func waitUnpacked(t *testing.T, e *testEnv, ls []imagetest.Layer, n int) {
	t.Helper()
	var diffIDs []digest.Digest
	for _, l := range ls {
		diffIDs = append(diffIDs, l.DiffID)
	}
	sn := e.DB.Snapshotter(e.svc.Snapshotter())
	for _, c := range image.ChainIDs(diffIDs)[:n] {
		for {
			if _, err := sn.Stat(e.ctx, c.String()); err == nil {
				break
			}
			if e.ctx.Err() != nil {
				t.Fatalf("snapshot %s never committed", c)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// restart replaces e's service by a new one over the same database, as a
// daemon that starts again.
func (e *testEnv) restart(t *testing.T) {
	t.Helper()
	e.rt = &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone(), gets: map[string]int{}}
	svc, err := New(e.DB, e.svc.cfg, WithHTTPClient(&http.Client{Transport: e.rt}))
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
}

// checkRepull pulls the image again from a registry that serves it whole
// and checks that only the last layer is fetched again, resumed from
// where the first pull stopped.
func checkRepull(t *testing.T, e *testEnv, built imagetest.Built, ls []imagetest.Layer) {
	t.Helper()
	host := serveFake(t, built, nil)
	if _, err := e.DB.GarbageCollect(e.ctx); err != nil {
		t.Fatal(err)
	}
	var sum *Summary
	img, err := e.svc.Pull(e.ctx, host+"/test/keep:v1", WithProgress(func(p Progress) {
		if p.Summary != nil {
			sum = p.Summary
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if sum == nil || sum.UnpackedExisting != 3 || sum.Unpacked != 1 {
		t.Errorf("re-pull summary %+v: want the 3 layers unpacked before kept, 1 unpacked", sum)
	}
	for i, l := range ls[:3] {
		if n := e.rt.blobGets(l.Desc); n != 0 {
			t.Errorf("layer %d fetched again (%d times): the failed pull's layers were lost", i, n)
		}
	}
	if n := e.rt.blobGets(built.Config); n != 0 {
		t.Errorf("config fetched again")
	}
	e.rt.mu.Lock()
	ranges := e.rt.ranges
	e.rt.mu.Unlock()
	if len(ranges) != 1 || !strings.Contains(ranges[0], ls[3].Desc.Digest.String()) {
		t.Errorf("ranged requests %q, want one resuming the last layer", ranges)
	}
	checkComplete(t, e, img, 4)
	if ls, err := e.DB.Leases().List(e.ctx); err != nil || len(ls) != 1 {
		t.Errorf("leases after the re-pull: %v, %v; want the failed pull's only", ls, err)
	}
}

// TestFailedPullKeepsFinishedLayers kills the registry in the middle of
// the last layer, once the others are committed: a collection must not
// take what the pull finished, and the next pull must fetch only the rest.
func TestFailedPullKeepsFinishedLayers(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) {
			e := newTestEnv(t, sn, func(c *Config) { c.FetchRetries = 0; c.MaxConcurrentDownloads = 4 })
			built, ls := fourLayers(t)
			cutAfter := make(chan struct{})
			host := serveFake(t, built, func(f *fakeRegistry) { f.cut, f.cutAfter = ls[3].Desc.Digest, cutAfter })
			go func() {
				waitCommitted(t, e, ls[0].Desc, ls[1].Desc, ls[2].Desc)
				waitUnpacked(t, e, ls, 3)
				close(cutAfter)
			}()
			_, err := e.svc.Pull(e.ctx, host+"/test/keep:v1")
			if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), ls[3].Desc.Digest.String()) || !strings.Contains(err.Error(), host) {
				t.Fatalf("pull from a registry that died: %v, want Unavailable naming the blob and %s", err, host)
			}
			t.Logf("pull: %v", err)
			l, err := e.DB.Leases().List(e.ctx)
			if err != nil || len(l) != 1 || time.Until(l[0].ExpiresAt) > DefaultKeepFailedPull {
				t.Fatalf("leases after a failed pull: %v, %v; want one expiring within %v", l, err, DefaultKeepFailedPull)
			}
			if act := e.activeSnapshots(t); len(act) != 0 {
				t.Errorf("active snapshots left: %v", act)
			}
			e.restart(t)
			checkRepull(t, e, built, ls)
		})
	}
}

// TestCloseKeepsFinishedLayers stops the service (a daemon's SIGTERM)
// while the last layer downloads: a graceful stop must keep what a kill
// would have kept.
func TestCloseKeepsFinishedLayers(t *testing.T) {
	e := newTestEnv(t, "overlayfs", func(c *Config) { c.MaxConcurrentDownloads = 4 })
	built, ls := fourLayers(t)
	stalled := make(chan struct{}, 1)
	host := serveFake(t, built, func(f *fakeRegistry) { f.hang, f.stalled = ls[3].Desc.Digest, stalled })
	pulled := make(chan error, 1)
	go func() {
		_, err := e.svc.Pull(e.ctx, host+"/test/keep:v1")
		pulled <- err
	}()
	select {
	case <-stalled:
	case err := <-pulled:
		t.Fatalf("pull ended before the registry stalled: %v", err)
	}
	waitCommitted(t, e, ls[0].Desc, ls[1].Desc, ls[2].Desc)
	waitUnpacked(t, e, ls, 3)
	if err := e.svc.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-pulled; !errdefs.IsUnavailable(err) {
		t.Fatalf("pull cut by Close: %v", err)
	}
	e.restart(t)
	checkRepull(t, e, built, ls)
}

// TestPullLeaseIsRenewed makes a pull last several times the lease's
// period while collections run: the lease must be renewed, or its blobs
// go and the pull fails.
func TestPullLeaseIsRenewed(t *testing.T) {
	const keep = 300 * time.Millisecond
	e := newTestEnv(t, "overlayfs", func(c *Config) { c.KeepFailedPull = gcDuration(keep) })
	slow := randomLayer(t, 256<<10)
	built := imagetest.Image{Layers: []imagetest.Layer{randomLayer(t, 64<<10), slow}}.Build(t)
	host := serveFake(t, built, func(f *fakeRegistry) { f.slow, f.slowFor = slow.Desc.Digest, 8*keep })
	stop := gcLoop(t, e.DB)
	img, err := e.svc.Pull(e.ctx, host+"/test/renew:v1")
	stop()
	if err != nil {
		t.Fatalf("pull lasting %v under a lease of %v: %v", 8*keep, keep, err)
	}
	checkComplete(t, e, img, 2)
}

// TestPullRestoresDeletedLayer deletes a layer blob of a pulled image
// (its snapshot stays): pulling again must fetch it back.
func TestPullRestoresDeletedLayer(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	built, ls := fourLayers(t)
	host := serveFake(t, built, nil)
	ref := host + "/test/restore:v1"
	img, err := e.svc.Pull(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DB.ContentStore().Delete(e.ctx, ls[1].Desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, _, _, missing, err := e.svc.Check(e.ctx, img, image.Only(image.DefaultPlatform())); err != nil || len(missing) != 1 {
		t.Fatalf("check after deleting a layer: missing %v, %v", missing, err)
	}
	if img, err = e.svc.Pull(e.ctx, ref); err != nil {
		t.Fatal(err)
	}
	checkComplete(t, e, img, 4)
	if n := e.rt.blobGets(ls[1].Desc); n != 2 {
		t.Errorf("deleted layer fetched %d times, want 2", n)
	}
	if n := e.rt.blobGets(ls[0].Desc); n != 1 {
		t.Errorf("present layer fetched %d times, want 1", n)
	}
}

// TestSyncRemoveReportsWhatIsHeld removes an image whose layers a failed
// pull's lease and another image still hold: the synchronous remove must
// say so, naming the lease and its expiry and the image.
func TestSyncRemoveReportsWhatIsHeld(t *testing.T) {
	e := newTestEnv(t, "overlayfs", func(c *Config) { c.FetchRetries = 0; c.MaxConcurrentDownloads = 4 })
	built, ls := fourLayers(t)
	cutAfter := make(chan struct{})
	failing := serveFake(t, built, func(f *fakeRegistry) { f.cut, f.cutAfter = ls[3].Desc.Digest, cutAfter })
	go func() {
		waitCommitted(t, e, ls[0].Desc, ls[1].Desc, ls[2].Desc)
		close(cutAfter)
	}()
	if _, err := e.svc.Pull(e.ctx, failing+"/test/held:v1"); err == nil {
		t.Fatal("pull from a registry that died succeeded")
	}
	leases, err := e.DB.Leases().List(e.ctx)
	if err != nil || len(leases) != 1 {
		t.Fatalf("leases after a failed pull: %v, %v", leases, err)
	}
	host := serveFake(t, built, nil)
	img, err := e.svc.Pull(e.ctx, host+"/test/held:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.DB.Images().Create(e.ctx, meta.Image{Name: "example.com/held:copy", Target: img.Target}); err != nil {
		t.Fatal(err)
	}

	held, err := e.svc.Remove(e.ctx, img.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	var lease, image *meta.Holder
	for i, h := range held {
		t.Logf("held by %s %q (expires %v): %d blobs, %d snapshots", h.Kind, h.ID, h.Lease.ExpiresAt, len(h.Content), len(h.Snapshots))
		switch h.Kind {
		case meta.HolderLease:
			lease = &held[i]
		case meta.HolderImage:
			image = &held[i]
		}
	}
	if lease == nil || lease.ID != leases[0].ID || lease.Lease.ExpiresAt.IsZero() || len(lease.Content) < 3 {
		t.Errorf("holders %+v: want the failed pull's lease %s with at least its 3 layers", held, leases[0].ID)
	}
	if image == nil || image.ID != "example.com/held:copy" || len(image.Content) != len(built.Blobs) || len(image.Snapshots) != 4 {
		t.Errorf("holders %+v: want the image example.com/held:copy with %d blobs and 4 snapshots", held, len(built.Blobs))
	}
}
