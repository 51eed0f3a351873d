package image_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// fuzzMediaTypes are the types a fuzzed blob is read as.
var fuzzMediaTypes = []string{
	ocispec.MediaTypeImageManifest, image.MediaTypeDockerSchema2Manifest,
	ocispec.MediaTypeImageIndex, image.MediaTypeDockerSchema2ManifestList,
	ocispec.MediaTypeImageConfig, image.MediaTypeDockerSchema2Config,
	image.MediaTypeDockerSchema1Manifest, ocispec.MediaTypeImageLayerGzip, "application/octet-stream",
}

// How the descriptor of a fuzzed blob lies about it.
const (
	honest = iota
	wrongSize
	wrongDigest // the store serves the blob under a digest it does not have
	invalidDigest
	overLimit
	lies
)

// FuzzDecodeBlob reads fuzzed blobs as manifests, indexes and configs,
// through descriptors that tell the truth or lie. A descriptor that lies
// about the size or the digest is FailedPrecondition, one that is invalid
// or over the limit is InvalidArgument, and nothing is decoded from
// either; a truthful one is decoded or refused as InvalidArgument (or
// NotImplemented for schema 1). What is decoded can be used as it is: its
// descriptors have valid digests and sizes, a config's diff IDs are valid
// digests, and Children lists exactly the config and layers of a
// manifest and the manifests of an index. Manifest, walking a fuzzed
// index, ends with a class too.
func FuzzDecodeBlob(f *testing.F) {
	b := imagetest.Index{Images: []imagetest.Image{{Layers: []imagetest.Layer{
		imagetest.NewLayer(f, image.CompressionGzip, imagetest.File("f", "x", 0o644)),
	}}}}.Build(f)
	for _, bl := range b.Blobs {
		for kind := range fuzzMediaTypes {
			f.Add(bl.Data, uint8(kind), uint8(honest))
		}
		f.Add(bl.Data, uint8(0), uint8(wrongDigest))
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"manifests":[{"digest":"sha256:abc","size":-1}]}`,
		`{"config":{"digest":"sha256:abc"},"layers":[]}`, `{"mediaType":"application/vnd.oci.image.index.v1+json","config":{}}`,
		`{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}`, `{"rootfs":{"type":"layers","diff_ids":["sha512:` + digest.FromString("x").Encoded() + `"]}}`,
		`{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + digest.FromString("x").String() + `","size":2}]}`,
	} {
		for lie := range lies {
			f.Add([]byte(s), uint8(2), uint8(lie))
		}
		f.Add([]byte(s), uint8(0), uint8(honest))
		f.Add([]byte(s), uint8(4), uint8(honest))
	}
	f.Fuzz(func(t *testing.T, data []byte, kind, lie uint8) {
		mt := fuzzMediaTypes[int(kind)%len(fuzzMediaTypes)]
		desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
		stored := desc
		switch lie % lies {
		case wrongSize:
			desc.Size++
		case wrongDigest:
			desc.Digest = digest.FromBytes(append(data, 'x'))
			stored.Digest = desc.Digest
		case invalidDigest:
			desc.Digest = digest.Digest("sha256:" + desc.Digest.Encoded()[:10])
			stored.Digest = desc.Digest
		case overLimit:
			desc.Size = image.MaxConfigSize + 1
		}
		store := imagetest.NewStore()
		store.Add(imagetest.Blob{Desc: stored, Data: data})
		ctx := context.Background()
		var decoded any
		var err error
		switch {
		case image.IsManifest(mt):
			var mf ocispec.Manifest
			mf, err = image.ReadManifest(ctx, store, desc)
			if err == nil {
				decoded = mf
				checkDescs(t, append([]ocispec.Descriptor{mf.Config}, mf.Layers...))
				checkChildren(t, store, desc, append([]ocispec.Descriptor{mf.Config}, mf.Layers...))
			}
		case image.IsIndex(mt):
			var idx ocispec.Index
			idx, err = image.ReadIndex(ctx, store, desc)
			if err == nil {
				decoded = idx
				checkDescs(t, idx.Manifests)
				checkChildren(t, store, desc, idx.Manifests)
			}
			_, werr := image.Manifest(ctx, store, desc, nil)
			if werr != nil && !errdefs.IsInvalidArgument(werr) && !errdefs.IsNotFound(werr) && !errdefs.IsFailedPrecondition(werr) && !errdefs.IsNotImplemented(werr) {
				t.Fatalf("Manifest: error of the wrong class: %v", werr)
			}
		case image.IsConfig(mt):
			var img ocispec.Image
			img, err = image.ReadConfig(ctx, store, desc)
			if err == nil {
				decoded = img
				if img.RootFS.Type != "layers" {
					t.Fatalf("rootfs type %q", img.RootFS.Type)
				}
				for _, d := range img.RootFS.DiffIDs {
					if d.Validate() != nil {
						t.Fatalf("diff ID %q", d)
					}
				}
			}
		default:
			_, err = image.Children(ctx, store, desc)
			if image.IsSchema1(mt) && !errdefs.IsNotImplemented(err) {
				t.Fatalf("schema 1: %v", err)
			}
			return
		}
		checkDecodeError(t, lie%lies, decoded, err)
	})
}

func checkDecodeError(t *testing.T, lie uint8, decoded any, err error) {
	t.Helper()
	switch lie {
	case honest:
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of the wrong class: %v", err)
		}
	case wrongSize, wrongDigest:
		if !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("a descriptor that lies: decoded %v, %v; want FailedPrecondition", decoded, err)
		}
	case invalidDigest, overLimit:
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("an invalid descriptor: decoded %v, %v; want InvalidArgument", decoded, err)
		}
	}
}

func checkDescs(t *testing.T, descs []ocispec.Descriptor) {
	t.Helper()
	for _, d := range descs {
		if d.Digest.Validate() != nil || d.Size < 0 {
			t.Fatalf("decoded descriptor %+v", d)
		}
	}
}

func checkChildren(t *testing.T, store *imagetest.Store, desc ocispec.Descriptor, want []ocispec.Descriptor) {
	t.Helper()
	got, err := image.Children(context.Background(), store, desc)
	if err != nil {
		t.Fatalf("Children of a blob that decodes: %v", err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(gb, wb)) {
		t.Fatalf("Children = %s, want %s", gb, wb)
	}
}
