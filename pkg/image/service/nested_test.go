package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// hostileTimeout bounds a pull that must be refused at once: the bugs these
// tests guard made such pulls hang until their context ended.
const hostileTimeout = 20 * time.Second

// indexOf builds an index blob listing descs and adds it to b, which then
// targets it.
func indexOf(t *testing.T, b *imagetest.Built, descs ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	data, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(data), Size: int64(len(data))}
	b.Blobs = append(b.Blobs, imagetest.Blob{Desc: d, Data: data})
	b.Target = d
	return d
}

// A manifest whose "layer" is of a type no unpack job claims used to wait
// for it until the pull's context ended; one whose layer is a manifest or
// an index led the walk on into it.
func TestPullRefusesLayerOfAnotherType(t *testing.T) {
	inner := imagetest.Image{Layers: []imagetest.Layer{randomLayer(t, 1<<10)}}.Build(t)
	innerIndex := inner
	indexOf(t, &innerIndex, inner.Target)
	for _, tc := range []struct {
		name  string
		layer imagetest.Blob
	}{
		{"octet-stream", imagetest.Blob{Desc: ocispec.Descriptor{MediaType: "application/octet-stream"}, Data: []byte("not a layer")}},
		{"config", imagetest.Blob{Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig}, Data: []byte("{}")}},
		{"manifest", imagetest.Blob{Desc: inner.Target, Data: inner.Blob(t, inner.Target.Digest)}},
		{"index", imagetest.Blob{Desc: innerIndex.Target, Data: innerIndex.Blob(t, innerIndex.Target.Digest)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.layer
			l.Desc.Digest, l.Desc.Size, l.Desc.Platform = digest.FromBytes(l.Data), int64(len(l.Data)), nil
			layer := imagetest.Layer{Desc: l.Desc, DiffID: digest.FromString("x"), Blob: l.Data}
			built := imagetest.Image{Layers: []imagetest.Layer{layer}}.Build(t)
			built.Blobs = append(built.Blobs, inner.Blobs...)
			built.Blobs = append(built.Blobs, innerIndex.Blobs...)
			e := newTestEnv(t, "overlayfs")
			host := serveFake(t, built, nil)
			ctx, cancel := context.WithTimeout(e.ctx, hostileTimeout)
			defer cancel()
			_, err := e.svc.Pull(ctx, host+"/test/odd:v1")
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not a layer") {
				t.Fatalf("pull: %v, want InvalidArgument: not a layer", err)
			}
			e.checkNothingLeft(t, built)
			e.checkNoLease(t)
		})
	}
}

// nestedIndexes builds depth indexes, each listing the next, over one
// image, as a registry may serve them; each lists its child copies times.
func nestedIndexes(t *testing.T, depth, copies int) imagetest.Built {
	t.Helper()
	b := imagetest.Image{Layers: []imagetest.Layer{randomLayer(t, 1<<10)}}.Build(t)
	child := b.Target
	child.Platform = nil
	for range depth {
		descs := make([]ocispec.Descriptor, copies)
		for i := range descs {
			descs[i] = child
		}
		child = indexOf(t, &b, descs...)
	}
	return b
}

func TestPullRefusesIndexesNestedTooDeep(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	ok := nestedIndexes(t, image.MaxIndexDepth, 1)
	if _, err := e.svc.Pull(e.ctx, serveFake(t, ok, nil)+"/test/nested:v1"); err != nil {
		t.Fatalf("%d nested indexes: %v", image.MaxIndexDepth, err)
	}
	// A registry may nest them as deep as it likes: the walk stops at the
	// first index too deep, without fetching what is under it.
	deep := nestedIndexes(t, image.MaxIndexDepth+3, 1)
	e = newTestEnv(t, "overlayfs")
	ctx, cancel := context.WithTimeout(e.ctx, hostileTimeout)
	defer cancel()
	_, err := e.svc.Pull(ctx, serveFake(t, deep, nil)+"/test/nested:v1")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("%d nested indexes: %v, want InvalidArgument", image.MaxIndexDepth+3, err)
	}
	for i, b := range deep.Blobs {
		if fetched := e.rt.blobGets(b.Desc) > 0; fetched != (i >= len(deep.Blobs)-image.MaxIndexDepth) {
			t.Errorf("blob %d of %d (%s) fetched: %v", i, len(deep.Blobs), b.Desc.MediaType, fetched)
		}
	}
	e.checkNothingLeft(t, deep)
	e.checkNoLease(t)
}

// Three indexes, each listing the next 200 times: 8 million paths to one
// manifest, which a pull of every platform walked one by one.
func TestPullAllWalksARepeatedIndexOnce(t *testing.T) {
	e := newTestEnv(t, "overlayfs")
	b := nestedIndexes(t, 3, 200)
	ctx, cancel := context.WithTimeout(e.ctx, hostileTimeout)
	defer cancel()
	if _, err := e.svc.Pull(ctx, serveFake(t, b, nil)+"/test/fan:v1", WithAllPlatforms()); err != nil {
		t.Fatalf("pull: %v", err)
	}
}
