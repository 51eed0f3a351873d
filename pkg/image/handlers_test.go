package image_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// recorder is a handler that records the digests it saw, in order.
type recorder struct {
	mu   sync.Mutex
	seen []digest.Digest
}

func (r *recorder) Handle(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, desc.Digest)
	return nil, nil
}

// depthFirst is the expected Walk order of an index built by testIndex.
func depthFirst(t *testing.T, store content.Provider, b imagetest.Built) []digest.Digest {
	t.Helper()
	out := []digest.Digest{b.Target.Digest}
	for _, m := range readIndex(t, b).Manifests {
		out = append(out, m.Digest)
		mf, err := image.ReadManifest(context.Background(), store, m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mf.Config.Digest)
		for _, l := range mf.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

func TestWalkDepthFirst(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64)
	store := newStore(t, b)
	rec := &recorder{}
	if err := image.Walk(ctx, image.Handlers(rec, image.ChildrenHandler(store)), b.Target); err != nil {
		t.Fatal(err)
	}
	if want := depthFirst(t, store, b); !slices.Equal(rec.seen, want) {
		t.Errorf("Walk order:\n got %v\nwant %v", rec.seen, want)
	}
}

func TestWalkSkipDesc(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64)
	store := newStore(t, b)
	skipped := readIndex(t, b).Manifests[0]
	skip := image.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest == skipped.Digest {
			return nil, image.ErrSkipDesc
		}
		return nil, nil
	})
	rec := &recorder{}
	if err := image.Walk(ctx, image.Handlers(skip, rec, image.ChildrenHandler(store)), b.Target); err != nil {
		t.Fatal(err)
	}
	if len(rec.seen) != 1+1+3 || slices.Contains(rec.seen, skipped.Digest) {
		t.Errorf("Walk with a skipped manifest saw %v", rec.seen)
	}
}

func TestHandlersChain(t *testing.T) {
	ctx := context.Background()
	d := ocispec.Descriptor{Digest: digest.FromString("parent")}
	kids := func(names ...string) image.HandlerFunc {
		return func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			var out []ocispec.Descriptor
			for _, n := range names {
				out = append(out, ocispec.Descriptor{Digest: digest.FromString(n)})
			}
			return out, nil
		}
	}
	none := image.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) { return nil, nil })
	stop := image.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return nil, image.ErrStopHandler
	})
	boom := errors.New("boom")
	fail := image.HandlerFunc(func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) { return nil, boom })

	ch, err := image.Handlers(kids("a"), kids("b", "c"), none).Handle(ctx, d)
	if err != nil || len(ch) != 2 || ch[0].Digest != digest.FromString("b") {
		t.Errorf("children of the last non-nil: %v, %v", ch, err)
	}
	ch, err = image.Handlers(kids("a"), stop, fail).Handle(ctx, d)
	if err != nil || len(ch) != 1 {
		t.Errorf("ErrStopHandler: %v, %v; want the children so far and no error", ch, err)
	}
	if _, err := image.Handlers(kids("a"), fail, kids("b")).Handle(ctx, d); !errors.Is(err, boom) {
		t.Errorf("error in chain: %v", err)
	}
}

func TestDispatchVisitsAllWithinBound(t *testing.T) {
	ctx := context.Background()
	// Four platforms: 1 index + 4 × (manifest + config + 2 layers) = 17.
	b := testIndex(t, amd64, arm64, armv7, ocispec.Platform{OS: "linux", Architecture: "s390x"})
	store := newStore(t, b)
	const bound = 2
	var running, peak atomic.Int32
	rec := &recorder{}
	slow := image.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return nil, nil
	})
	h := image.Handlers(slow, rec, image.ChildrenHandler(store))
	if err := image.Dispatch(ctx, h, semaphore.NewWeighted(bound), b.Target); err != nil {
		t.Fatal(err)
	}
	want := depthFirst(t, store, b)
	got := slices.Clone(rec.seen)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Dispatch visited %d descriptors, want %d", len(got), len(want))
	}
	if p := peak.Load(); p != bound {
		t.Errorf("peak concurrency %d, want exactly the bound %d", p, bound)
	}
}

func TestDispatchFirstErrorCancels(t *testing.T) {
	b := testIndex(t, amd64, arm64)
	store := newStore(t, b)
	boom := errors.New("boom")
	failing := readIndex(t, b).Manifests[0].Digest
	h := image.Handlers(image.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest == failing {
			return nil, boom
		}
		return nil, nil
	}), image.ChildrenHandler(store))
	err := image.Dispatch(context.Background(), h, nil, b.Target)
	if !errors.Is(err, boom) {
		t.Errorf("Dispatch = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := image.Dispatch(ctx, h, semaphore.NewWeighted(1), b.Target); !errors.Is(err, context.Canceled) {
		t.Errorf("Dispatch with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestFilterPlatformsAndLimitManifests(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64, armv7)
	store := newStore(t, b)
	idx := readIndex(t, b)
	children := image.ChildrenHandler(store)

	ch, err := image.FilterPlatforms(children, image.Only(arm64))(ctx, b.Target)
	if err != nil || len(ch) != 2 || ch[0].Digest != idx.Manifests[1].Digest || ch[1].Digest != idx.Manifests[2].Digest {
		t.Errorf("FilterPlatforms(arm64) = %v, %v; want arm64 and arm/v7", ch, err)
	}
	ch, err = image.LimitManifests(image.FilterPlatforms(children, image.Only(arm64)), image.Only(arm64), 1)(ctx, b.Target)
	if err != nil || len(ch) != 1 || ch[0].Digest != idx.Manifests[1].Digest {
		t.Errorf("LimitManifests(arm64, 1) = %v, %v; want arm64 only", ch, err)
	}
	m := image.Ordered(armv7, amd64)
	ch, err = image.LimitManifests(image.FilterPlatforms(children, m), m, 0)(ctx, b.Target)
	if err != nil || len(ch) != 2 || ch[0].Digest != idx.Manifests[2].Digest {
		t.Errorf("LimitManifests(arm/v7 first, all) = %v, %v", ch, err)
	}
	s390x := image.Only(ocispec.Platform{OS: "linux", Architecture: "s390x"})
	if _, err := image.LimitManifests(image.FilterPlatforms(children, s390x), s390x, 1)(ctx, b.Target); !errdefs.IsNotFound(err) {
		t.Errorf("LimitManifests with nothing left = %v, want NotFound", err)
	}
	// Configs and layers carry no platform: kept.
	ch, err = image.FilterPlatforms(children, s390x)(ctx, idx.Manifests[0])
	if err != nil || len(ch) != 3 {
		t.Errorf("FilterPlatforms on a manifest = %v, %v; want config + 2 layers", ch, err)
	}
}

func TestSetChildrenLabels(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64)
	store := newStore(t, b)
	if _, err := store.Update(ctx, content.Info{Digest: b.Target.Digest, Labels: map[string]string{"keep": "me"}}); err != nil {
		t.Fatal(err)
	}
	h := image.FilterPlatforms(image.SetChildrenLabels(store, image.ChildrenHandler(store)), image.Only(arm64))
	if err := image.Walk(ctx, h, b.Target); err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, b)
	info, err := store.Info(ctx, b.Target.Digest)
	if err != nil {
		t.Fatal(err)
	}
	p := image.LabelGCRefContentPrefix
	want := map[string]string{
		"keep":     "me",
		p + ".m.0": idx.Manifests[0].Digest.String(),
		p + ".m.1": idx.Manifests[1].Digest.String(),
	}
	if !maps.Equal(info.Labels, want) {
		t.Errorf("index labels = %v, want %v", info.Labels, want)
	}
	mf, err := image.ReadManifest(ctx, store, idx.Manifests[1])
	if err != nil {
		t.Fatal(err)
	}
	info, err = store.Info(ctx, idx.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{
		p + ".config": mf.Config.Digest.String(),
		p + ".l.0":    mf.Layers[0].Digest.String(),
		p + ".l.1":    mf.Layers[1].Digest.String(),
	}
	if !maps.Equal(info.Labels, want) {
		t.Errorf("manifest labels = %v, want %v", info.Labels, want)
	}
	// The amd64 manifest was filtered out: never visited, no labels.
	if info, _ := store.Info(ctx, idx.Manifests[0].Digest); len(info.Labels) != 0 {
		t.Errorf("filtered-out manifest got labels %v", info.Labels)
	}
	// A missing parent blob is the manager's error.
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("gone")}
	h2 := image.SetChildrenLabels(store, func(context.Context, ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return idx.Manifests, nil
	})
	if _, err := h2(ctx, missing); !errdefs.IsNotFound(err) {
		t.Errorf("labels on a missing blob: %v, want NotFound", err)
	}
}
