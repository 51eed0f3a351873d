package image_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv7 = ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
)

// testImage is a single-platform image with two layers whose content says
// which platform it is for.
func testImage(t *testing.T, p ocispec.Platform) imagetest.Image {
	t.Helper()
	name := image.FormatPlatform(p)
	return imagetest.Image{
		Platform: p,
		Layers: []imagetest.Layer{
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.Dir("etc", 0o755), imagetest.File("etc/platform", name, 0o644)),
			imagetest.NewLayer(t, image.CompressionZstd, imagetest.File("hello", "hello "+name, 0o755)),
		},
		Config: ocispec.ImageConfig{Cmd: []string{"/hello"}},
	}
}

func testIndex(t *testing.T, ps ...ocispec.Platform) imagetest.Built {
	t.Helper()
	var idx imagetest.Index
	for _, p := range ps {
		idx.Images = append(idx.Images, testImage(t, p))
	}
	return idx.Build(t)
}

func TestManifestSelectsPlatform(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64, armv7)
	store := newStore(t, b)
	idx := readIndex(t, b)
	for _, tc := range []struct {
		m    image.Matcher
		want ocispec.Descriptor
	}{
		{image.Only(amd64), idx.Manifests[0]},
		{image.Only(arm64), idx.Manifests[1]},
		{image.Only(ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v8"}), idx.Manifests[2]},
		{image.Ordered(armv7, arm64), idx.Manifests[2]},
		{nil, idx.Manifests[0]},
	} {
		mf, err := image.Manifest(ctx, store, b.Target, tc.m)
		if err != nil {
			t.Fatalf("Manifest(%v): %v", tc.m, err)
		}
		var want ocispec.Manifest
		if err := json.Unmarshal(b.Blob(t, tc.want.Digest), &want); err != nil {
			t.Fatal(err)
		}
		if mf.Config.Digest != want.Config.Digest {
			t.Errorf("Manifest(%v) has config %s, want the one of %s (%s)", tc.m, mf.Config.Digest, image.FormatPlatform(*tc.want.Platform), want.Config.Digest)
		}
	}
	_, err := image.Manifest(ctx, store, b.Target, image.Only(ocispec.Platform{OS: "linux", Architecture: "s390x"}))
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("Manifest for a missing platform: %v, want NotFound naming linux/s390x", err)
	}
}

func TestManifestNestedIndexAndConfigPlatform(t *testing.T) {
	ctx := context.Background()
	inner := testIndex(t, arm64)
	single := testImage(t, amd64).Build(t)
	// An outer index whose entries carry no platform: the nested index is
	// walked, the bare manifest is matched on its config's platform.
	outer := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		withoutPlatform(inner.Target), withoutPlatform(single.Target),
	}}
	outer.SchemaVersion = 2
	ob := jsonBlob(t, ocispec.MediaTypeImageIndex, outer)
	store := newStore(t, inner, single)
	addBlobs(t, store, ob)

	mf, err := image.Manifest(ctx, store, ob.Desc, image.Only(amd64))
	if err != nil || mf.Config.Digest != single.Config.Digest {
		t.Errorf("Manifest(amd64) = config %s, %v; want %s", mf.Config.Digest, err, single.Config.Digest)
	}
	cfg, err := image.Config(ctx, store, ob.Desc, image.Only(arm64))
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := image.RootFS(ctx, store, cfg)
	if err != nil || len(diffIDs) != 2 {
		t.Fatalf("RootFS = %v, %v; want 2 diff IDs", diffIDs, err)
	}
	got, err := image.DiffIDs(ctx, store, ob.Desc, image.Only(arm64))
	if err != nil || got[0] != diffIDs[0] || got[1] != diffIDs[1] {
		t.Errorf("DiffIDs = %v, %v; want %v", got, err, diffIDs)
	}
	if _, err := image.Manifest(ctx, store, ob.Desc, image.Only(armv7)); !errdefs.IsNotFound(err) {
		t.Errorf("Manifest(arm/v7) = %v, want NotFound (a config platform must match)", err)
	}
}

func TestManifestGivenDirectlyIgnoresPlatform(t *testing.T) {
	b := testImage(t, arm64).Build(t)
	mf, err := image.Manifest(context.Background(), newStore(t, b), withoutPlatform(b.Target), image.Only(amd64))
	if err != nil || mf.Config.Digest != b.Config.Digest {
		t.Errorf("Manifest of a bare manifest = %v, %v", mf.Config.Digest, err)
	}
}

func TestReadLimitsAndChecks(t *testing.T) {
	ctx := context.Background()
	b := testImage(t, amd64).Build(t)
	store := newStore(t, b)

	big := b.Target
	big.Size = image.MaxManifestSize + 1
	_, err := image.ReadManifest(ctx, store, big)
	want := "manifest " + big.Digest.String() + " is 4194305 bytes, over the limit of 4194304"
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("oversized manifest: %v, want InvalidArgument %q", err, want)
	}

	// A blob over the limit whose descriptor lies about its size, in a
	// provider that does not check sizes itself (the local store does).
	huge := jsonBlob(t, ocispec.MediaTypeImageConfig, map[string]string{"pad": strings.Repeat("x", image.MaxConfigSize)})
	unchecked := imagetest.NewStore()
	unchecked.Add(huge)
	lying := huge.Desc
	lying.Size = 10
	if _, err := image.ReadConfig(ctx, unchecked, lying); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "over the limit of 8388608") {
		t.Errorf("oversized config behind a small descriptor: %v, want InvalidArgument over the limit", err)
	}

	short := b.Target
	short.Size--
	if _, err := image.ReadManifest(ctx, store, short); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("size mismatch: %v, want FailedPrecondition", err)
	}

	// Corrupt bytes stored under the manifest's digest.
	corrupt := imagetest.NewStore()
	data := append([]byte(nil), b.Blob(t, b.Target.Digest)...)
	data[len(data)-2] ^= 1
	corrupt.Add(imagetest.Blob{Desc: b.Target, Data: data})
	if _, err := image.ReadManifest(ctx, corrupt, b.Target); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("digest mismatch: %v, want FailedPrecondition", err)
	}

	if _, err := image.ReadManifest(ctx, store, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("none"), Size: 4}); !errdefs.IsNotFound(err) {
		t.Errorf("missing manifest: %v, want NotFound", err)
	}
}

func TestReadRefusesConfusedMediaTypes(t *testing.T) {
	ctx := context.Background()
	idx := testIndex(t, amd64)
	store := newStore(t, idx)
	asManifest := idx.Target
	asManifest.MediaType = ocispec.MediaTypeImageManifest
	if _, err := image.ReadManifest(ctx, store, asManifest); !errdefs.IsInvalidArgument(err) {
		t.Errorf("index read as a manifest: %v, want InvalidArgument", err)
	}
	asDocker := idx.Target
	asDocker.MediaType = image.MediaTypeDockerSchema2ManifestList
	if _, err := image.ReadIndex(ctx, store, asDocker); !errdefs.IsInvalidArgument(err) {
		t.Errorf("OCI index read as a Docker list: %v, want InvalidArgument", err)
	}
	schema1 := ocispec.Descriptor{MediaType: image.MediaTypeDockerSchema1Manifest, Digest: digest.FromString("x"), Size: 1}
	if _, err := image.Children(ctx, store, schema1); !errdefs.IsNotImplemented(err) {
		t.Errorf("schema 1: %v, want NotImplemented", err)
	}
	if _, err := image.Manifest(ctx, store, schema1, nil); !errdefs.IsNotImplemented(err) {
		t.Errorf("schema 1 manifest: %v, want NotImplemented", err)
	}
}

func TestDockerMediaTypes(t *testing.T) {
	ctx := context.Background()
	img := testImage(t, amd64)
	img.Docker = true
	b := imagetest.Index{Images: []imagetest.Image{img}, Docker: true}.Build(t)
	store := newStore(t, b)
	mf, err := image.Manifest(ctx, store, b.Target, image.Only(amd64))
	if err != nil {
		t.Fatal(err)
	}
	if mf.Config.MediaType != image.MediaTypeDockerSchema2Config || mf.Layers[0].MediaType != image.MediaTypeDockerSchema2LayerGzip {
		t.Errorf("manifest has types %q, %q", mf.Config.MediaType, mf.Layers[0].MediaType)
	}
	if c, ok := image.LayerCompression(mf.Layers[1].MediaType); !ok || c != image.CompressionZstd {
		t.Errorf("LayerCompression(%q) = %v, %v", mf.Layers[1].MediaType, c, ok)
	}
}

func TestChainID(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	sha := func(s string) digest.Digest {
		sum := sha256.Sum256([]byte(s))
		return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
	}
	ab := sha(a.String() + " " + b.String())
	abc := sha(ab.String() + " " + c.String())
	ids := image.ChainIDs([]digest.Digest{a, b, c})
	if len(ids) != 3 || ids[0] != a || ids[1] != ab || ids[2] != abc {
		t.Errorf("ChainIDs = %v, want [%s %s %s]", ids, a, ab, abc)
	}
	if got := image.ChainID([]digest.Digest{a, b, c}); got != abc {
		t.Errorf("ChainID = %s, want %s", got, abc)
	}
	if got := image.ChainID(nil); got != "" {
		t.Errorf("ChainID(nil) = %s, want empty", got)
	}
}

func TestChildren(t *testing.T) {
	ctx := context.Background()
	b := testIndex(t, amd64, arm64)
	store := newStore(t, b)
	idx := readIndex(t, b)
	ch, err := image.Children(ctx, store, b.Target)
	if err != nil || len(ch) != 2 || ch[0].Digest != idx.Manifests[0].Digest {
		t.Fatalf("Children(index) = %v, %v", ch, err)
	}
	ch2, err := image.Children(ctx, store, ch[1])
	if err != nil || len(ch2) != 3 || !image.IsConfig(ch2[0].MediaType) || !image.IsLayer(ch2[2].MediaType) {
		t.Fatalf("Children(manifest) = %v, %v; want config + 2 layers", ch2, err)
	}
	if ch3, err := image.Children(ctx, store, ch2[1]); err != nil || ch3 != nil {
		t.Errorf("Children(layer) = %v, %v; want none", ch3, err)
	}
}

func readIndex(t *testing.T, b imagetest.Built) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(b.Blob(t, b.Target.Digest), &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func withoutPlatform(d ocispec.Descriptor) ocispec.Descriptor {
	d.Platform = nil
	return d
}

func jsonBlob(t *testing.T, mt string, v any) imagetest.Blob {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return imagetest.Blob{Desc: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}, Data: data}
}

// newStore is a local content store in a temporary directory holding the
// blobs of bs.
func newStore(t *testing.T, bs ...imagetest.Built) content.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		addBlobs(t, s, b.Blobs...)
	}
	return s
}

func addBlobs(t *testing.T, s content.Store, blobs ...imagetest.Blob) {
	t.Helper()
	for _, bl := range blobs {
		if err := content.WriteBlob(context.Background(), s, "test-"+bl.Desc.Digest.String(), bytes.NewReader(bl.Data), bl.Desc); err != nil {
			t.Fatal(err)
		}
	}
}
