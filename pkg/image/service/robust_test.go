package service

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
)

// TestPullRefusesMaliciousImages pushes images that try to escape the
// snapshot, lie about their content or blow up, and checks that each is
// refused with its class, the host is untouched and no snapshot is left.
func TestPullRefusesMaliciousImages(t *testing.T) {
	host := imagetest.StartRegistry(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := imagetest.NewLayer(t, image.CompressionGzip, imagetest.Dir("etc", 0o755), imagetest.File("etc/ok", "fine", 0o644))
	layer := func(es ...imagetest.Entry) imagetest.Layer {
		return imagetest.NewLayer(t, image.CompressionGzip, es...)
	}
	lying := base
	lying.DiffID = digest.FromString("not the diff ID")
	// Too short to name a snapshot: its unpack key took a slice of it
	// that panicked, and the panic took the daemon down.
	short := base
	short.DiffID = "sha256:abc"
	bomb := layer(imagetest.File("zeros", string(make([]byte, 8<<20)), 0o644))
	huge := strings.Repeat("x", 1<<20)

	cases := []struct {
		name  string
		img   imagetest.Image
		class func(error) bool
		want  string // in the error
		// overlayOK: with overlayfs the layer is applied alone, where
		// "evil" is a plain directory of the layer that hides the lower
		// symlink: accepted, and nothing leaves the snapshot.
		overlayOK bool
	}{
		{"dot-dot entry", imagetest.Image{Layers: []imagetest.Layer{base, layer(imagetest.File("../escape", "out", 0o644))}}, errdefs.IsInvalidArgument, "../escape", false},
		{"write through symlink", imagetest.Image{Layers: []imagetest.Layer{base, layer(imagetest.Symlink("evil", outside), imagetest.File("evil/pwned", "x", 0o644))}}, errdefs.IsInvalidArgument, "evil", false},
		{"write through symlink of a lower layer", imagetest.Image{Layers: []imagetest.Layer{layer(imagetest.Symlink("evil", outside)), layer(imagetest.File("evil/pwned", "x", 0o644))}}, errdefs.IsInvalidArgument, "evil", true},
		{"hard link to /etc/shadow", imagetest.Image{Layers: []imagetest.Layer{base, layer(imagetest.Hardlink("shadow", "../../../../../../../../etc/shadow"))}}, errdefs.IsInvalidArgument, "shadow", false},
		{"absolute hard link", imagetest.Image{Layers: []imagetest.Layer{base, layer(imagetest.Hardlink("shadow", "/etc/shadow"))}}, errdefs.IsInvalidArgument, "shadow", false},
		{"whiteout outside", imagetest.Image{Layers: []imagetest.Layer{base, layer(imagetest.Whiteout("../../../../../../../.." + victim))}}, errdefs.IsInvalidArgument, "wh", false},
		{"config lies about the diff ID", imagetest.Image{Layers: []imagetest.Layer{lying}}, errdefs.IsInvalidArgument, "diff ID", false},
		{"config with an invalid diff ID", imagetest.Image{Layers: []imagetest.Layer{short}}, errdefs.IsInvalidArgument, "diff ID 0", false},
		{"decompression bomb", imagetest.Image{Layers: []imagetest.Layer{base, bomb}}, func(err error) bool { return errdefs.IsFailedPrecondition(err) || errdefs.IsInvalidArgument(err) }, "exceeds", false},
		{"config over the limit", imagetest.Image{Layers: []imagetest.Layer{base}, Config: ocispec.ImageConfig{Env: []string{strings.Repeat(huge, 9)}}}, errdefs.IsInvalidArgument, "limit", false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, sn := range []string{"overlayfs", "native"} {
				e := newTestEnv(t, sn, func(cfg *Config) { cfg.MaxLayerSize = 1 << 20 })
				repo := "test/evil" + strconv.Itoa(i)
				built := c.img.Build(t)
				imagetest.Push(t, host, repo, "v1", built)
				_, err := e.svc.Pull(e.ctx, host+"/"+repo+":v1")
				if c.overlayOK && sn == "overlayfs" && err == nil {
					if ents, _ := os.ReadDir(outside); len(ents) != 1 {
						t.Fatalf("%s: something was written outside: %v", sn, ents)
					}
					continue
				}
				if err == nil || !c.class(err) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("%s: pull: %v, want a refusal mentioning %q", sn, err, c.want)
				}
				t.Logf("%s: %v", sn, err)
				e.checkNothingLeft(t, built)
				e.checkNoLease(t)
				if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
					t.Fatalf("victim changed: %q, %v", b, err)
				}
				if ents, _ := os.ReadDir(outside); len(ents) != 1 {
					t.Fatalf("%s: something was written outside: %v", sn, ents)
				}
			}
		})
	}
}

// checkNoLease checks that a refused pull dropped its lease: pulling
// again would not help, so nothing is kept for it.
func (e *testEnv) checkNoLease(t *testing.T) {
	t.Helper()
	if ls, err := e.DB.Leases().List(e.ctx); err != nil || len(ls) != 0 {
		t.Errorf("leases after a refused pull: %v, %v", ls, err)
	}
}

// checkNothingLeft checks that no image was recorded and no snapshot is
// left active or committed for the top of built.
func (e *testEnv) checkNothingLeft(t *testing.T, built imagetest.Built) {
	t.Helper()
	if imgs, err := e.svc.List(e.ctx); err != nil || len(imgs) != 0 {
		t.Errorf("images after a refused pull: %v, %v", imgs, err)
	}
	if act := e.activeSnapshots(t); len(act) != 0 {
		t.Errorf("active snapshots left: %v", act)
	}
	var escaped []string
	_ = filepath.WalkDir(e.Root, func(p string, d os.DirEntry, err error) error {
		if err == nil && (d.Name() == "escape" || d.Name() == "pwned") {
			escaped = append(escaped, p)
		}
		return nil
	})
	if len(escaped) > 0 {
		t.Errorf("files written outside a layer: %v", escaped)
	}
}

// fakeRegistry serves blobs and one tagged manifest, and can stop
// sending a blob half-way, like a stalled registry.
type fakeRegistry struct {
	blobs  map[digest.Digest][]byte
	target ocispec.Descriptor
	hang   digest.Digest
	// stalled, when set, is sent to (without blocking) once the blob
	// hang has sent its first half.
	stalled chan<- struct{}
	// cut, once cutAfter is closed, sends its first half and drops the
	// connection, as a registry that dies.
	cut      digest.Digest
	cutAfter <-chan struct{}
	// slow is sent in 20 pieces over slowFor.
	slow    digest.Digest
	slowFor time.Duration
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	i := strings.LastIndex(r.URL.Path, "/")
	obj := r.URL.Path[i+1:]
	d := digest.Digest(obj)
	if strings.Contains(r.URL.Path, "/manifests/") {
		if obj == "v1" {
			d = f.target.Digest
		}
		w.Header().Set("Content-Type", f.target.MediaType)
		w.Header().Set("Docker-Content-Digest", d.String())
	}
	b, ok := f.blobs[d]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	switch d {
	case f.cut:
		select {
		case <-f.cutAfter:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case f.slow:
		step := (len(b) + 19) / 20
		for i := 0; i < len(b); i += step {
			time.Sleep(f.slowFor / 20)
			if _, err := w.Write(b[i:min(i+step, len(b))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
		return
	}
	if d == f.hang {
		_, _ = w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		if f.stalled != nil {
			select {
			case f.stalled <- struct{}{}:
			default:
			}
		}
		<-r.Context().Done()
		return
	}
	_, _ = w.Write(b)
}

func serveFake(t *testing.T, built imagetest.Built, mutate func(*fakeRegistry)) string {
	t.Helper()
	f := &fakeRegistry{blobs: map[digest.Digest][]byte{}, target: built.Target}
	for _, b := range built.Blobs {
		f.blobs[b.Desc.Digest] = b.Data
	}
	if mutate != nil {
		mutate(f)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func randomLayer(t *testing.T, size int) imagetest.Layer {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("random", string(b), 0o644))
}

func TestPullRefusesBlobThatLiesAboutItsDigest(t *testing.T) {
	real := randomLayer(t, 64<<10)
	claimed := randomLayer(t, 64<<10)
	// The manifest names claimed's digest; the registry serves real's
	// bytes under it and the config vouches for real's diff ID, so only
	// the blob digest can catch it.
	lie := real
	lie.Desc.Digest = claimed.Desc.Digest
	built := imagetest.Image{Layers: []imagetest.Layer{lie}}.Build(t)
	built.Blobs = append(built.Blobs, imagetest.Blob{Desc: lie.Desc, Data: real.Blob})
	for _, sn := range []string{"overlayfs", "native"} {
		e := newTestEnv(t, sn)
		host := serveFake(t, built, func(f *fakeRegistry) { f.blobs[lie.Desc.Digest] = real.Blob })
		_, err := e.svc.Pull(e.ctx, host+"/test/lie:v1")
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), lie.Desc.Digest.String()) {
			t.Fatalf("%s: pull: %v, want FailedPrecondition naming %s", sn, err, lie.Desc.Digest)
		}
		e.checkNothingLeft(t, built)
		e.checkNoLease(t)
		if _, err := e.DB.ContentStore().Status(e.ctx, ingestRef(lie.Desc)); !errdefs.IsNotFound(err) {
			t.Errorf("%s: the bad ingest was kept for resuming: %v", sn, err)
		}
	}
}

// A registry that serves another layer's bytes under a layer's digest:
// neither the digest nor the diff ID match. The pull is refused for the
// digest, FailedPrecondition, whether the layer was applied while it
// downloaded or after: the streamed apply reported the diff ID, as
// InvalidArgument.
func TestPullRefusesBlobServedWithOtherContent(t *testing.T) {
	// Uncompressed, so that both blobs have the size the manifest says.
	random := func() imagetest.Layer {
		b := make([]byte, 64<<10)
		_, _ = rand.Read(b)
		return imagetest.NewLayer(t, image.CompressionNone, imagetest.File("random", string(b), 0o644))
	}
	real, other := random(), random()
	built := imagetest.Image{Layers: []imagetest.Layer{real}}.Build(t)
	for _, sn := range []string{"overlayfs", "native"} {
		e := newTestEnv(t, sn)
		host := serveFake(t, built, func(f *fakeRegistry) { f.blobs[real.Desc.Digest] = other.Blob })
		_, err := e.svc.Pull(e.ctx, host+"/test/other:v1")
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "does not match its descriptor") {
			t.Fatalf("%s: pull: %v, want FailedPrecondition: does not match its descriptor", sn, err)
		}
		e.checkNothingLeft(t, built)
		e.checkNoLease(t)
	}
}

func TestPullRefusesManifestOverTheLimit(t *testing.T) {
	// The distribution registry refuses such manifests, so a fake one
	// serves it.
	l := randomLayer(t, 1<<10)
	built := imagetest.Image{Layers: []imagetest.Layer{l}, Annotations: map[string]string{"a": strings.Repeat("x", image.MaxManifestSize)}}.Build(t)
	e := newTestEnv(t, "overlayfs")
	host := serveFake(t, built, nil)
	_, err := e.svc.Pull(e.ctx, host+"/test/big:v1")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("pull: %v, want InvalidArgument about the limit", err)
	}
	if got := e.rt.blobGets(built.Target); got != 0 {
		t.Errorf("the manifest was fetched %d times", got)
	}
	e.checkNothingLeft(t, built)
}

func TestPullStallTimeout(t *testing.T) {
	l := randomLayer(t, 1<<20)
	built := imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t)
	e := newTestEnv(t, "overlayfs", func(cfg *Config) { cfg.StallTimeout = gcDuration(300 * time.Millisecond); cfg.FetchRetries = 1 })
	host := serveFake(t, built, func(f *fakeRegistry) { f.hang = l.Desc.Digest })
	start := time.Now()
	_, err := e.svc.Pull(e.ctx, host+"/test/stall:v1")
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), l.Desc.Digest.String()) || !strings.Contains(err.Error(), "stall_timeout") ||
		!strings.Contains(err.Error(), "after 1 retries") {
		t.Fatalf("pull: %v, want Unavailable naming the blob and stall_timeout, after one retry", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("stall detected after %v", d)
	}
	e.checkNothingLeft(t, built)
	// The half that arrived stays for a resume.
	if st, err := e.DB.ContentStore().Status(e.ctx, ingestRef(l.Desc)); err != nil || st.Offset == 0 {
		t.Errorf("ingest after a stall: %+v, %v", st, err)
	}
}

func TestPullResumesInterruptedIngest(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) {
			e := newTestEnv(t, sn)
			host := imagetest.StartRegistry(t)
			l := randomLayer(t, 4<<20)
			built := imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t)
			imagetest.Push(t, host, "test/resume", "v1", built)

			// What an interrupted pull leaves: the first half in the ingest.
			half := l.Desc.Size / 2
			w, err := e.DB.ContentStore().Writer(e.ctx, content.WithRef(ingestRef(l.Desc)), content.WithDescriptor(l.Desc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(l.Blob[:half]); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			var mu sync.Mutex
			var resumed int64
			img, err := e.svc.Pull(e.ctx, host+"/test/resume:v1", WithProgress(func(p Progress) {
				mu.Lock()
				defer mu.Unlock()
				if p.Desc.Digest == l.Desc.Digest && p.Resumed > 0 {
					resumed = p.Resumed
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			if resumed != half {
				t.Errorf("progress says resumed from %d, want %d", resumed, half)
			}
			want := fmt.Sprintf("/%s bytes=%d-", l.Desc.Digest, half)
			e.rt.mu.Lock()
			ranges := e.rt.ranges
			e.rt.mu.Unlock()
			if len(ranges) != 1 || !strings.HasSuffix(ranges[0], want) {
				t.Errorf("ranged requests %q, want one ending %q", ranges, want)
			}
			e.viewTop(t, img, image.DefaultPlatform(), func(root string) {
				b, err := os.ReadFile(filepath.Join(root, "random"))
				if err != nil || len(b) != 4<<20 {
					t.Errorf("unpacked file: %d bytes, %v", len(b), err)
				}
			})
		})
	}
}

func TestRemoveFreesBlobsAndSnapshots(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	host := imagetest.StartRegistry(t)
	built, _ := buildImage(t, image.DefaultPlatform(), sampleLayers(t), []image.Compression{image.CompressionGzip}, false)
	imagetest.Push(t, host, "test/remove", "v1", built)
	img, err := e.svc.Pull(e.ctx, host+"/test/remove:v1")
	if err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(e.Root, "content", "blobs", "sha256")
	snaps := filepath.Join(e.Root, "overlayfs", "snapshots")
	if n := countEntries(t, blobs); n != len(built.Blobs) {
		t.Fatalf("%d blobs after the pull, want %d", n, len(built.Blobs))
	}
	if n := countEntries(t, snaps); n != 3 {
		t.Fatalf("%d snapshot directories after the pull, want 3", n)
	}
	if held, err := e.svc.Remove(e.ctx, img.Name, true); err != nil || len(held) != 0 {
		t.Fatalf("remove: %v, held %+v", err, held)
	}
	if n := countEntries(t, blobs); n != 0 {
		t.Errorf("%d blobs left after remove", n)
	}
	if n := countEntries(t, snaps); n != 0 {
		t.Errorf("%d snapshot directories left after remove", n)
	}
	if _, err := e.svc.Get(e.ctx, img.Name); !errdefs.IsNotFound(err) {
		t.Errorf("get after remove: %v", err)
	}
	if _, err := e.svc.Remove(e.ctx, img.Name, false); !errdefs.IsNotFound(err) {
		t.Errorf("second remove: %v", err)
	}
}

func countEntries(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(ents)
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for key, mutate := range map[string]func(*Config){
		"max_concurrent_downloads": func(c *Config) { c.MaxConcurrentDownloads = 0 },
		"stall_timeout":            func(c *Config) { c.StallTimeout = 0 },
		"max_layer_size":           func(c *Config) { c.MaxLayerSize = 0 },
		"max_unpack_parallel":      func(c *Config) { c.MaxUnpackParallel = 0 },
		"keep_failed_pull":         func(c *Config) { c.KeepFailedPull = 0 },
		"fetch_retries":            func(c *Config) { c.FetchRetries = -1 },
		"fetch_retry_time":         func(c *Config) { c.FetchRetryTime = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v", key, err)
		}
	}
}

func TestNewRefusesUnknownSnapshotter(t *testing.T) {
	env := metatest.NewEnv(t)
	for _, name := range []string{"", "btrfs"} {
		cfg := DefaultConfig()
		cfg.Snapshotter = name
		if _, err := New(env.DB, cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "snapshotter") {
			t.Errorf("snapshotter %q: %v, want InvalidArgument", name, err)
		}
	}
}
