package service

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// gcLoop runs collections back to back until the returned stop is called.
func gcLoop(t *testing.T, db *meta.DB) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	runs := 0
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := db.GarbageCollect(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("gc: %v", err)
			}
			runs++
			time.Sleep(time.Millisecond)
		}
	})
	return func() int {
		cancel()
		wg.Wait()
		return runs
	}
}

// TestCrossNamespacePullsSurviveGC pulls an image that one namespace holds
// into several new namespaces at once while collections run back to back.
// The blobs are in the backend already, so each pull only links them into
// its namespace: without the pull's lease on the link, a collection
// between the link and the image record takes them, and the unpack finds
// "content ...: not found".
func TestCrossNamespacePullsSurviveGC(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) {
			e := newTestEnv(t, sn, func(c *Config) { c.MaxUnpackParallel = 4 })
			host := imagetest.StartRegistry(t)
			built, _ := buildImage(t, image.DefaultPlatform(), sampleLayers(t), []image.Compression{image.CompressionGzip}, true)
			imagetest.Push(t, host, "test/shared", "v1", built)
			ref := host + "/test/shared:v1"
			if _, err := e.svc.Pull(e.ctx, ref); err != nil {
				t.Fatal(err)
			}
			stop := gcLoop(t, e.DB)
			const rounds, n = 5, 4
			for r := range rounds {
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := range n {
					ctx := namespaces.WithNamespace(e.ctx, fmt.Sprintf("r%d-%d", r, i))
					wg.Go(func() {
						img, err := e.svc.Pull(ctx, ref)
						if err == nil {
							err = checkPresent(ctx, e, img)
						}
						errs[i] = err
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("round %d, pull %d: %v", r, i, err)
					}
				}
			}
			t.Logf("%d collections ran during %d pulls", stop(), rounds*n)
		})
	}
}

// checkPresent returns an error unless every blob of img is in the
// namespace of ctx.
func checkPresent(ctx context.Context, e *testEnv, img meta.Image) error {
	ok, _, _, missing, err := e.svc.Check(ctx, img, image.Only(image.DefaultPlatform()))
	if err != nil {
		return err
	}
	if !ok || len(missing) > 0 {
		return fmt.Errorf("image %s incomplete: missing %v", img.Name, missing)
	}
	return nil
}

// TestPullRacingSyncRemove pulls an image while a synchronous remove of
// the same image runs, again and again. Whichever wins, the pull must
// succeed and an image that is left must be whole.
func TestPullRacingSyncRemove(t *testing.T) {
	e := newTestEnv(t, "overlayfs", func(c *Config) { c.MaxUnpackParallel = 4 })
	host := imagetest.StartRegistry(t)
	built, _ := buildImage(t, image.DefaultPlatform(), sampleLayers(t), []image.Compression{image.CompressionGzip}, true)
	imagetest.Push(t, host, "test/race", "v1", built)
	ref := host + "/test/race:v1"
	// The blobs stay in the backend through another namespace, so that
	// every pull only links them: the window the race needs.
	if _, err := e.svc.Pull(namespaces.WithNamespace(e.ctx, "keeper"), ref); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := e.svc.Pull(e.ctx, ref); err != nil {
			t.Fatalf("round %d: first pull: %v", i, err)
		}
		var wg sync.WaitGroup
		var pullErr, rmErr error
		var img meta.Image
		wg.Go(func() { img, pullErr = e.svc.Pull(e.ctx, ref) })
		wg.Go(func() { rmErr = e.DB.Images().Delete(e.ctx, ref, meta.SynchronousDelete()) })
		wg.Wait()
		if pullErr != nil {
			t.Fatalf("round %d: pull racing a sync remove: %v", i, pullErr)
		}
		if rmErr != nil {
			t.Logf("round %d: remove: %v", i, rmErr)
		}
		if _, err := e.svc.Get(e.ctx, ref); err == nil {
			if err := checkPresent(e.ctx, e, img); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		// Again from nothing: the namespace has no blob of it.
		if err := e.DB.Images().Delete(e.ctx, ref, meta.SynchronousDelete()); err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}
