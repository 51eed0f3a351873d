package cri

import (
	"bytes"
	"context"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// imageFixture is a Service whose database holds two images as a pull
// leaves them, each a two-platform index of which the host's platform was
// fetched, under a tag and a digest name: the workload's and the sandbox
// image.
func imageFixture(tb testing.TB) (*Service, context.Context) {
	tb.Helper()
	db := metatest.New(tb)
	ctx := namespaces.WithNamespace(context.Background(), namespaces.K8s)
	lctx, done, err := meta.WithLease(ctx, db.Leases())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = done(context.Background()) })
	cfg := imageservice.DefaultConfig()
	cfg.Snapshotter = "native"
	images, err := imageservice.New(db, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = images.Close(context.Background()) })
	s := &Service{db: db, images: images, cfg: Config{SandboxImage: "registry.k8s.io/pause:3.10"}}
	for _, name := range []string{"registry.k8s.io/e2e-test-images/busybox", "registry.k8s.io/pause"} {
		host := imagetest.Image{Layers: []imagetest.Layer{imagetest.NewLayer(tb, image.CompressionGzip,
			imagetest.File("bin/"+name[len(name)-5:], "x", 0o755))}, Config: ocispec.ImageConfig{User: "65535"}}
		other := host
		other.Platform = ocispec.Platform{OS: "linux", Architecture: "arm64"}
		idx := imagetest.Index{Images: []imagetest.Image{host, other}}.Build(tb)
		hostBuilt := host.Build(tb)
		for _, bl := range append(hostBuilt.Blobs, idx.Blobs[len(idx.Blobs)-1]) {
			if err := content.WriteBlob(lctx, db.ContentStore(), bl.Desc.Digest.String(), bytes.NewReader(bl.Data), bl.Desc); err != nil {
				tb.Fatal(err)
			}
		}
		for _, n := range []string{name + ":3.10", name + "@" + idx.Target.Digest.String()} {
			if _, err := db.Images().Create(lctx, meta.Image{Name: n, Target: idx.Target, ConfigDigest: hostBuilt.Config.Digest}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return s, ctx
}

// BenchmarkImageStatus is kubelet's EnsureImageExists before each
// container it creates.
func BenchmarkImageStatus(b *testing.B) {
	s, ctx := imageFixture(b)
	req := &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:3.10"}}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.ImageStatus(ctx, req)
		if err != nil || resp.GetImage().GetUid().GetValue() != 65535 || len(resp.GetImage().GetRepoDigests()) != 1 {
			b.Fatal(resp, err)
		}
	}
}

// ImageStatus reports what the image service reads of the content, with
// what it decodes cached: the size follows blobs removed, and a config
// gone fails the call as it did, however often it was decoded before.
func TestImageStatusFollowsContent(t *testing.T) {
	s, ctx := imageFixture(t)
	name := "registry.k8s.io/e2e-test-images/busybox:3.10"
	img, err := s.db.Images().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) error {
		t.Helper()
		var resp *runtime.ImageStatusResponse
		for range 2 { // decoded, then from the cache
			if resp, err = s.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: name}}); err != nil {
				return err
			}
		}
		size, err := s.images.Size(ctx, img, false)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Image.Size != uint64(size.Content) || resp.Image.Uid.GetValue() != 65535 {
			t.Errorf("%s: size %d, uid %v; want %d, 65535", step, resp.Image.Size, resp.Image.Uid, size.Content)
		}
		return nil
	}
	if err := check("pulled"); err != nil {
		t.Fatal(err)
	}
	mf, err := image.Manifest(ctx, s.db.ContentStore(), img.Target, image.Only(image.DefaultPlatform()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.ContentStore().Delete(ctx, mf.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	if err := check("layer removed"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.ContentStore().Delete(ctx, mf.Config.Digest); err != nil {
		t.Fatal(err)
	}
	_, want := s.images.Config(ctx, img, image.DefaultPlatform())
	if err := check("config removed"); !errdefs.IsNotFound(err) || !errdefs.IsNotFound(want) {
		t.Errorf("config removed: %v; the image service: %v", err, want)
	}
}

// The sandbox image is pinned, whether the configuration names it by name,
// by digest reference or by ID, and no other image is.
func TestImageStatusPinned(t *testing.T) {
	s, ctx := imageFixture(t)
	pause, err := s.db.Images().Get(ctx, "registry.k8s.io/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	for _, sandboxImage := range []string{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause@" + pause.Target.Digest.String(),
		pause.ConfigDigest.String(), pause.ConfigDigest.Encoded(), "registry.k8s.io/pause:absent", ""} {
		s.cfg.SandboxImage = sandboxImage
		want := !strings.HasSuffix(sandboxImage, "absent") && sandboxImage != ""
		for name, pinned := range map[string]bool{"registry.k8s.io/pause:3.10": want, "registry.k8s.io/e2e-test-images/busybox:3.10": false} {
			resp, err := s.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: name}})
			if err != nil || resp.Image.Pinned != pinned {
				t.Errorf("sandbox image %q: %s pinned %v, %v; want %v", sandboxImage, name, resp.GetImage().GetPinned(), err, pinned)
			}
		}
	}
}
