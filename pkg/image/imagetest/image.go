package imagetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/image"
)

// Blob is one blob of a built image with its descriptor.
type Blob struct {
	Desc ocispec.Descriptor
	Data []byte
}

// Built is a built image or index.
type Built struct {
	// Target is the manifest (with its Platform) or the index.
	Target ocispec.Descriptor
	// Config is the config of a single image; zero for an index.
	Config ocispec.Descriptor
	// Blobs are every blob, children before parents (the push order),
	// each once.
	Blobs []Blob
}

// Blob returns the bytes of the blob d; the test fails if there is none.
func (b Built) Blob(t testing.TB, d digest.Digest) []byte {
	t.Helper()
	for _, bl := range b.Blobs {
		if bl.Desc.Digest == d {
			return bl.Data
		}
	}
	t.Fatalf("built image has no blob %s", d)
	return nil
}

// Image describes a single-platform image.
type Image struct {
	Layers   []Layer
	Config   ocispec.ImageConfig
	Platform ocispec.Platform // zero: linux/amd64
	// Docker selects the Docker schema 2 media types for the manifest,
	// the config and gzip or plain layers instead of the OCI ones.
	Docker bool
	// Annotations of the manifest.
	Annotations map[string]string
}

// Build builds the config and manifest of img.
func (img Image) Build(t testing.TB) Built {
	t.Helper()
	platform := img.Platform
	if platform.OS == "" {
		platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	created := time.Unix(epochUnix, 0).UTC()
	cfg := ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}
	var b Built
	layers := make([]ocispec.Descriptor, 0, len(img.Layers))
	for _, l := range img.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		d := l.Desc
		if img.Docker {
			d.MediaType = dockerLayerType(t, d.MediaType)
		}
		layers = append(layers, d)
		b.add(Blob{Desc: d, Data: l.Blob})
	}
	configType, manifestType := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if img.Docker {
		configType, manifestType = image.MediaTypeDockerSchema2Config, image.MediaTypeDockerSchema2Manifest
	}
	b.Config = b.add(blobOf(t, configType, cfg))
	mf := ocispec.Manifest{
		MediaType:   manifestType,
		Config:      b.Config,
		Layers:      layers,
		Annotations: img.Annotations,
	}
	mf.SchemaVersion = 2
	b.Target = b.add(blobOf(t, manifestType, mf))
	b.Target.Platform = &platform
	return b
}

// Index describes a multi-platform image.
type Index struct {
	Images []Image
	// Docker selects the Docker manifest list media type (the images
	// choose their own types).
	Docker bool
}

// Build builds every image and the index over them.
func (idx Index) Build(t testing.TB) Built {
	t.Helper()
	var b Built
	manifests := make([]ocispec.Descriptor, 0, len(idx.Images))
	for _, img := range idx.Images {
		ib := img.Build(t)
		for _, bl := range ib.Blobs {
			b.add(bl)
		}
		manifests = append(manifests, ib.Target)
	}
	mt := ocispec.MediaTypeImageIndex
	if idx.Docker {
		mt = image.MediaTypeDockerSchema2ManifestList
	}
	index := ocispec.Index{MediaType: mt, Manifests: manifests}
	index.SchemaVersion = 2
	b.Target = b.add(blobOf(t, mt, index))
	return b
}

// add appends bl unless a blob of that digest is there already.
func (b *Built) add(bl Blob) ocispec.Descriptor {
	for _, have := range b.Blobs {
		if have.Desc.Digest == bl.Desc.Digest {
			return bl.Desc
		}
	}
	b.Blobs = append(b.Blobs, bl)
	return bl.Desc
}

func blobOf(t testing.TB, mediaType string, v any) Blob {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %s: %v", mediaType, err)
	}
	return Blob{
		Desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		Data: data,
	}
}

func dockerLayerType(t testing.TB, oci string) string {
	t.Helper()
	switch oci {
	case ocispec.MediaTypeImageLayer:
		return image.MediaTypeDockerSchema2Layer
	case ocispec.MediaTypeImageLayerGzip:
		return image.MediaTypeDockerSchema2LayerGzip
	case ocispec.MediaTypeImageLayerZstd:
		return image.MediaTypeDockerSchema2LayerZstd
	}
	t.Fatalf("no Docker media type for %q", oci)
	return ""
}
