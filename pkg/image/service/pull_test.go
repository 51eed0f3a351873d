package service

import (
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

func TestPullUnpacksLayers(t *testing.T) {
	for _, sn := range []string{"overlayfs", "native"} {
		t.Run(sn, func(t *testing.T) {
			e := newTestEnv(t, sn)
			host := imagetest.StartRegistry(t)
			built, layers := buildImage(t, image.DefaultPlatform(), sampleLayers(t),
				[]image.Compression{image.CompressionGzip, image.CompressionZstd, image.CompressionNone}, true)
			imagetest.Push(t, host, "test/layers", "v1", built)

			var events []Progress
			var mu sync.Mutex
			img, err := e.svc.Pull(e.ctx, host+"/test/layers:v1", WithProgress(func(p Progress) {
				mu.Lock()
				events = append(events, p)
				mu.Unlock()
			}))
			if err != nil {
				t.Fatal(err)
			}
			if img.Name != host+"/test/layers:v1" || img.Target.Digest != built.Target.Digest {
				t.Fatalf("image %q → %s, want %s", img.Name, img.Target.Digest, built.Target.Digest)
			}
			sum := events[len(events)-1].Summary
			if sum == nil || sum.Unpacked != 4 || sum.Fetched != 6 {
				t.Fatalf("summary %+v, want 4 layers unpacked and 6 blobs fetched", sum)
			}
			if sn == "overlayfs" && sum.Streamed == 0 {
				t.Errorf("no layer was streamed into its snapshot: %+v", sum)
			}
			want := expectedTree(layers[1:])
			e.viewTop(t, img, image.DefaultPlatform(), func(root string) {
				compareTree(t, root, want, func(p string) bool {
					// The busybox layer's files are not modelled.
					top := strings.SplitN(p, "/", 2)[0]
					if top == "etc" {
						return p == "etc/passwd" || p == "etc/group"
					}
					return top != "opq" && top != "data" && top != "usr"
				})
			})
			if act := e.activeSnapshots(t); len(act) != 0 {
				t.Errorf("active snapshots left: %v", act)
			}
			checkComplete(t, e, img, len(built.Blobs)-2)

			// Again: nothing to fetch, nothing to unpack. The layers are
			// skipped because their snapshots exist, and count as existing.
			before := e.rt.blobGets(built.Config)
			var again *Summary
			if _, err := e.svc.Pull(e.ctx, host+"/test/layers:v1", WithProgress(func(p Progress) {
				if p.Summary != nil {
					again = p.Summary
				}
			})); err != nil {
				t.Fatal(err)
			}
			if got := e.rt.blobGets(built.Config); got != before {
				t.Errorf("second pull fetched the config again")
			}
			if again == nil || again.Fetched != 0 || again.Existing != len(built.Blobs) || again.UnpackedExisting != 4 || again.Unpacked != 0 {
				t.Errorf("second pull: summary %+v, want %d blobs existing and 4 layers unpacked already", again, len(built.Blobs))
			}
		})
	}
}

func checkComplete(t *testing.T, e *testEnv, img meta.Image, layers int) {
	t.Helper()
	ok, required, present, missing, err := e.svc.Check(e.ctx, img, image.Only(image.DefaultPlatform()))
	if err != nil || !ok || len(missing) != 0 || len(required) != layers+1 || len(present) != len(required) {
		t.Errorf("check: available %v, %d required, %d present, missing %v, err %v", ok, len(required), len(present), missing, err)
	}
	size, err := e.svc.Size(e.ctx, img, true)
	if err != nil || size.Content <= 0 || size.Unpacked <= 0 {
		t.Errorf("size %+v, %v", size, err)
	}
	if contentOnly, err := e.svc.Size(e.ctx, img, false); err != nil || contentOnly.Content != size.Content || contentOnly.Unpacked != -1 {
		t.Errorf("content-only size %+v, %v; want content %d and unpacked -1", contentOnly, err, size.Content)
	}
	got, err := e.svc.Get(e.ctx, img.Name)
	if err != nil || got.Target.Digest != img.Target.Digest {
		t.Errorf("get: %v, %v", got, err)
	}
}

func TestPullPlatforms(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	host := imagetest.StartRegistry(t)
	one := func(p ocispec.Platform, name string) imagetest.Image {
		return imagetest.Image{Platform: p, Layers: []imagetest.Layer{
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("arch", name, 0o644)),
		}}
	}
	idx := imagetest.Index{Images: []imagetest.Image{one(amd64, "amd64"), one(arm64, "arm64")}}
	built := idx.Build(t)
	imagetest.Push(t, host, "test/multi", "v1", built)
	amdImg, armImg := idx.Images[0].Build(t), idx.Images[1].Build(t)
	ref := host + "/test/multi:v1"

	readArch := func(img meta.Image, p ocispec.Platform) string {
		var got string
		e.viewTop(t, img, p, func(root string) {
			b, err := osReadFile(root + "/arch")
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
		})
		return got
	}

	img, err := e.svc.Pull(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	host1 := "amd64"
	if image.DefaultPlatform().Architecture == "arm64" {
		host1 = "arm64"
	}
	if got := readArch(img, image.DefaultPlatform()); got != host1 {
		t.Errorf("default pull unpacked %q, want the host's %q", got, host1)
	}
	if n := e.rt.blobGets(armImg.Target) + e.rt.blobGets(amdImg.Target); n != 1 {
		t.Errorf("default pull fetched %d manifests, want 1", n)
	}

	if img, err = e.svc.Pull(e.ctx, ref, WithPlatform(arm64)); err != nil {
		t.Fatal(err)
	}
	if got := readArch(img, arm64); got != "arm64" {
		t.Errorf("arm64 pull unpacked %q", got)
	}

	e2 := newTestEnv(t, "overlayfs")
	if img, err = e2.svc.Pull(e2.ctx, ref, WithAllPlatforms()); err != nil {
		t.Fatal(err)
	}
	for _, b := range []imagetest.Built{amdImg, armImg} {
		for _, d := range []ocispec.Descriptor{b.Target, b.Config, b.Blobs[0].Desc} {
			if _, err := e2.DB.ContentStore().Info(e2.ctx, d.Digest); err != nil {
				t.Errorf("all-platforms pull lacks %s: %v", d.Digest, err)
			}
		}
	}
	ps, err := e2.svc.Platforms(e2.ctx, img)
	if err != nil || len(ps) != 2 {
		t.Errorf("platforms %v, %v", ps, err)
	}
}

func TestConcurrentPullsAreDeduplicated(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	host := imagetest.StartRegistry(t)
	built, _ := buildImage(t, image.DefaultPlatform(), sampleLayers(t), []image.Compression{image.CompressionGzip}, true)
	imagetest.Push(t, host, "test/dedup", "v1", built)
	const n = 4
	var wg sync.WaitGroup
	imgs := make([]meta.Image, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { imgs[i], errs[i] = e.svc.Pull(e.ctx, host+"/test/dedup:v1") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || imgs[i].Target.Digest != built.Target.Digest {
			t.Fatalf("pull %d: %v, %v", i, imgs[i], errs[i])
		}
	}
	for _, b := range built.Blobs {
		if got := e.rt.blobGets(b.Desc); got != 1 {
			t.Errorf("blob %s (%s) fetched %d times, want once", b.Desc.Digest, b.Desc.MediaType, got)
		}
	}
}

// TestPullRefusesSingleManifestOfAnotherPlatform pulls an image that is a
// single linux/amd64 manifest (no index) for windows/arm64, and one for
// another architecture than the host's without a platform: both must be
// refused, as no manifest for the platform exists, and leave nothing.
func TestPullRefusesSingleManifestOfAnotherPlatform(t *testing.T) {
	other := arm64
	if image.DefaultPlatform().Architecture == "arm64" {
		other = amd64
	}
	cases := []struct {
		name     string
		platform ocispec.Platform // of the image
		opts     []PullOpt
		want     string
	}{
		{"asked for windows/arm64", amd64, []PullOpt{WithPlatform(ocispec.Platform{OS: "windows", Architecture: "arm64"})}, "is for linux/amd64, not for windows/arm64"},
		{"host platform", other, nil, "is for " + image.FormatPlatform(image.NormalizePlatform(other))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, "overlayfs")
			built := imagetest.Image{Platform: c.platform, Layers: []imagetest.Layer{randomLayer(t, 1<<10)}}.Build(t)
			host := serveFake(t, built, nil)
			_, err := e.svc.Pull(e.ctx, host+"/test/single:v1", c.opts...)
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("pull: %v, want NotFound saying %q", err, c.want)
			}
			e.checkNothingLeft(t, built)
			e.checkNoLease(t)
			if _, err := e.svc.Pull(e.ctx, host+"/test/single:v1", WithPlatform(c.platform)); err != nil {
				t.Fatalf("pull for the image's own platform: %v", err)
			}
		})
	}
}

// TestFailedPullIsLogged checks that a failed pull logs its reference and
// the class of its error.
func TestFailedPullIsLogged(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	host := imagetest.StartRegistry(t)
	var mu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		logs = append(logs, prefix+" "+args)
		mu.Unlock()
	}, funcr.Options{})
	ref := host + "/test/missing:v1"
	if _, err := e.svc.Pull(klog.NewContext(e.ctx, logger), ref); !errdefs.IsNotFound(err) {
		t.Fatalf("pull of a missing tag: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range logs {
		if strings.Contains(l, `"msg"="Pull failed"`) && strings.Contains(l, `"image"="`+ref+`"`) && strings.Contains(l, `"class"="NotFound"`) {
			return
		}
	}
	t.Errorf("no log of the failed pull with its image and class in:\n%s", strings.Join(logs, "\n"))
}
