package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
)

// manualGC is a policy under which the collector runs only when a test
// asks for it.
func manualGC() meta.Opt {
	p := gc.DefaultPolicy()
	p.StartupDelay = gc.Duration(time.Hour)
	p.MutationThreshold = 0
	p.DeletionThreshold = 1 << 30
	p.PauseThreshold = 1
	return meta.WithGCPolicy(p)
}

// newEnv opens a database for the test with the collector under the
// test's control.
func newEnv(t testing.TB, opts ...meta.Opt) *metatest.Env {
	t.Helper()
	return metatest.NewEnv(t, append([]meta.Opt{manualGC()}, opts...)...)
}

func nsCtx(t testing.TB, ns string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return namespaces.WithNamespace(ctx, ns)
}

// leased returns ctx with a new lease of db, deleted when the test ends.
func leased(t testing.TB, db *meta.DB, ctx context.Context) context.Context {
	t.Helper()
	ctx, done, err := meta.WithLease(ctx, db.Leases())
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	t.Cleanup(func() { _ = done(context.Background()) })
	return ctx
}

// blob commits b in the namespace of ctx with labels.
func blob(t testing.TB, ctx context.Context, cs content.Store, b []byte, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(len(b))}
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, cs, "write-"+desc.Digest.String(), bytes.NewReader(b), desc, opts...); err != nil {
		t.Fatalf("write blob: %v", err)
	}
	return desc
}

// image is a manifest with a config and layers, linked by GC labels as
// a pull would link them.
type image struct {
	manifest, config ocispec.Descriptor
	layers           []ocispec.Descriptor
}

// pushImage commits the blobs of an image named name whose layers are
// layers, and creates the image record.
func pushImage(t testing.TB, ctx context.Context, db *meta.DB, name string, layers ...[]byte) image {
	t.Helper()
	cs := db.ContentStore()
	var img image
	labels := map[string]string{}
	for i, l := range layers {
		d := blob(t, ctx, cs, l, nil)
		img.layers = append(img.layers, d)
		labels[fmt.Sprintf("%s.l.%d", meta.LabelGCRefContent, i)] = d.Digest.String()
	}
	img.config = blob(t, ctx, cs, []byte("config of "+name), nil)
	img.config.MediaType = ocispec.MediaTypeImageConfig
	labels[meta.LabelGCRefContent+".config"] = img.config.Digest.String()
	img.manifest = blob(t, ctx, cs, []byte("manifest of "+name), labels)
	img.manifest.MediaType = ocispec.MediaTypeImageManifest
	if _, err := db.Images().Create(ctx, meta.Image{Name: name, Target: img.manifest, ConfigDigest: img.config.Digest}); err != nil {
		t.Fatalf("create image %q: %v", name, err)
	}
	return img
}

func (img image) blobs() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{img.manifest, img.config}, img.layers...)
}

// collect runs one collection and fails the test on an error.
func collect(t testing.TB, db *meta.DB) gc.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := db.GarbageCollect(ctx)
	if err != nil {
		t.Fatalf("garbage collect: %v", err)
	}
	return st
}

// recorder is an events.Publisher that remembers what it was given.
type recorder struct {
	mu     sync.Mutex
	topics []string
}

func (r *recorder) Publish(ctx context.Context, topic string, _ proto.Message) error {
	ns, _ := namespaces.Namespace(ctx)
	r.mu.Lock()
	r.topics = append(r.topics, ns+" "+topic)
	r.mu.Unlock()
	return nil
}

func (r *recorder) has(t *testing.T, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range want {
		if !slices.Contains(r.topics, w) {
			t.Errorf("event %q not published; got %q", w, r.topics)
		}
	}
}

func leasesFrom(ctx context.Context) (string, bool) { return leases.FromContext(ctx) }

func withLeaseID(ctx context.Context, id string) context.Context { return leases.WithLease(ctx, id) }
