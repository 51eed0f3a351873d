package meta

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	benchImages = 1000
	benchLayers = 8 // per image: with its manifest and config, 10 blobs
)

// benchImage writes the records of image i as a pull would leave them: a
// manifest referencing its config and layers by GC labels, and the image
// pointing at the manifest. Written straight into one transaction: ten
// thousand blobs through the content API would mostly measure fsync.
func benchImage(t *tx, ns string, i int) error {
	now := time.Now().UTC()
	put := func(s string, labels map[string]string) (digest.Digest, error) {
		d := digest.FromString(s)
		return d, putBlob(t.Tx, ns, content.Info{Digest: d, Size: int64(len(s)), CreatedAt: now, UpdatedAt: now, Labels: labels})
	}
	labels := map[string]string{}
	for l := range benchLayers {
		d, err := put(fmt.Sprintf("image %d layer %d", i, l), nil)
		if err != nil {
			return err
		}
		labels[fmt.Sprintf("%s.l.%d", LabelGCRefContent, l)] = d.String()
	}
	cfg, err := put(fmt.Sprintf("image %d config", i), nil)
	if err != nil {
		return err
	}
	labels[LabelGCRefContent+".config"] = cfg.String()
	m, err := put(fmt.Sprintf("image %d manifest", i), labels)
	if err != nil {
		return err
	}
	ibkt, err := createNSBucket(t.Tx, ns, bucketKeyImages, []byte(benchName(i)))
	if err != nil {
		return err
	}
	return writeImage(ibkt, Image{Name: benchName(i), CreatedAt: now, UpdatedAt: now,
		Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: m, Size: 1}})
}

func benchName(i int) string { return fmt.Sprintf("registry.example/bench/image-%d:latest", i) }

// BenchmarkGC measures the pause of a collection (gc.Stats.MetaD: the time
// writers are held off) over 10,000 blobs and 1,000 images. Each iteration
// deletes one image, whose 10 blobs the collection sweeps. With no other
// writer the optimistic mark holds and the pause is the sweep alone.
func BenchmarkGC(b *testing.B) { benchmarkGC(b, false) }

// BenchmarkGCWithWriter is BenchmarkGC with a writer updating an image's
// labels in a loop, so most marks are invalidated and the pause includes
// the mark again under the lock: the worst case.
func BenchmarkGCWithWriter(b *testing.B) { benchmarkGC(b, true) }

func benchmarkGC(b *testing.B, writer bool) {
	root := b.TempDir()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		b.Fatal(err)
	}
	sn, err := native.NewSnapshotter(filepath.Join(root, "native"))
	if err != nil {
		b.Fatal(err)
	}
	defer sn.Close()
	p := gc.DefaultPolicy()
	p.StartupDelay, p.MutationThreshold, p.DeletionThreshold = gc.Duration(time.Hour), 0, 1<<30
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	db, err := Open(ctx, filepath.Join(root, "meta.db"), cs, map[string]snapshot.Snapshotter{"native": sn}, WithGCPolicy(p))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.update(ctx, func(t *tx) error {
		for i := range benchImages {
			if err := benchImage(t, "bench", i); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.GarbageCollect(ctx); err != nil { // the first, reconciling run
		b.Fatal(err)
	}

	if writer {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		defer func() { stop(); <-done }()
		go func() {
			defer close(done)
			img := Image{Name: benchName(benchImages - 1), Labels: map[string]string{}}
			for i := 0; wctx.Err() == nil; i++ {
				img.Labels["n"] = fmt.Sprint(i)
				if _, err := db.Images().Update(wctx, img, "labels.n"); err != nil && wctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	var pauses []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		img := i % (benchImages - 1) // the last one is the writer's
		b.StopTimer()
		if err := db.Images().Delete(ctx, benchName(img)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := db.GarbageCollect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Removed[gc.ResourceContent] != benchLayers+2 {
			b.Fatalf("collection removed %v, want the %d blobs of one image", st.Removed, benchLayers+2)
		}
		pauses = append(pauses, st.MetaD)
		if err := db.update(ctx, func(t *tx) error { return benchImage(t, "bench", img) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(pauses)
	pct := func(q float64) float64 {
		return float64(pauses[min(len(pauses)-1, int(q*float64(len(pauses))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "pause-p50-ms")
	b.ReportMetric(pct(0.99), "pause-p99-ms")
	b.ReportMetric(pct(1), "pause-max-ms")
}
