// Package image owns the image model and the image handlers.
//
// The model: media types (OCI and Docker schema 2), platforms and their
// matchers, and readers for what a content.Provider holds: Manifest walks
// an index to the manifest of the best matching platform, Config and
// RootFS read the image config, ChainID/ChainIDs name the snapshots of the
// unpacked layers, Children lists what a descriptor points at. Every blob
// read into memory is bounded (MaxManifestSize, MaxIndexSize,
// MaxConfigSize) and checked against its descriptor's size and digest.
//
// The handlers, in the style of net/http: a Handler takes a descriptor and
// returns its children; Walk runs one depth first, Dispatch runs one over
// a tree concurrently, bounded by a semaphore; wrappers filter children by
// platform and set the GC reference labels on parent blobs.
//
// remote/ resolves and fetches from registries, reference/ parses image
// references, imagetest/ builds images and runs a registry for tests.
//
// This package imports only leaves (errdefs, content), image-spec,
// go-digest and golang.org/x/sync.
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Limits of the JSON blobs read into memory. A descriptor over its limit
// is refused before anything is read.
const (
	MaxManifestSize = 4 << 20 // bytes, for image manifests
	MaxIndexSize    = 4 << 20 // bytes, for indexes and manifest lists
	MaxConfigSize   = 8 << 20 // bytes, for image configs

	// MaxIndexDepth bounds the nesting of indexes, in Manifest and in a
	// pull: an index at this depth (the top one is at 0) is refused.
	MaxIndexDepth = 4
)

// Manifest returns the manifest desc designates. desc is a manifest, or an
// index walked to the manifest of the best platform m matches (nil m:
// any platform, first in the index). A manifest listed in an index without
// a platform is matched on its config's platform; a manifest given
// directly is taken whatever its platform. NotFound when no manifest
// matches.
func Manifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m Matcher) (ocispec.Manifest, error) {
	if m == nil {
		m = AllPlatforms()
	}
	mf, ok, err := manifest(ctx, p, desc, m, 0, false)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	if !ok {
		return ocispec.Manifest{}, fmt.Errorf("image %s: no manifest for %s: %w", desc.Digest, m, errdefs.ErrNotFound)
	}
	return mf, nil
}

// manifest returns ok false when desc is a manifest that does not match,
// or an index with no matching manifest.
func manifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m Matcher, depth int, fromIndex bool) (ocispec.Manifest, bool, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Manifest{}, false, err
	}
	switch {
	case IsManifest(desc.MediaType):
		mf, err := ReadManifest(ctx, p, desc)
		if err != nil {
			return ocispec.Manifest{}, false, err
		}
		if !fromIndex || desc.Platform != nil {
			return mf, true, nil
		}
		img, err := ReadConfig(ctx, p, mf.Config)
		if err != nil {
			return ocispec.Manifest{}, false, err
		}
		return mf, m.Match(img.Platform), nil
	case IsIndex(desc.MediaType):
		if depth >= MaxIndexDepth {
			return ocispec.Manifest{}, false, fmt.Errorf("index %s: nested more than %d deep: %w", desc.Digest, MaxIndexDepth, errdefs.ErrInvalidArgument)
		}
		idx, err := ReadIndex(ctx, p, desc)
		if err != nil {
			return ocispec.Manifest{}, false, err
		}
		for _, child := range sortPlatforms(filterPlatforms(idx.Manifests, m), m) {
			mf, ok, err := manifest(ctx, p, child, m, depth+1, true)
			if err != nil || ok {
				return mf, ok, err
			}
		}
		return ocispec.Manifest{}, false, nil
	}
	return ocispec.Manifest{}, false, unexpectedType(desc, "a manifest or an index")
}

// Config returns the config descriptor of the image desc designates
// (see Manifest for the walk of an index).
func Config(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m Matcher) (ocispec.Descriptor, error) {
	mf, err := Manifest(ctx, p, desc, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return mf.Config, nil
}

// RootFS returns the layer DiffIDs of the image config configDesc.
func RootFS(ctx context.Context, p content.Provider, configDesc ocispec.Descriptor) ([]digest.Digest, error) {
	img, err := ReadConfig(ctx, p, configDesc)
	if err != nil {
		return nil, err
	}
	return img.RootFS.DiffIDs, nil
}

// DiffIDs returns the layer DiffIDs of the image desc designates, and
// checks that the manifest has one layer per DiffID.
func DiffIDs(ctx context.Context, p content.Provider, desc ocispec.Descriptor, m Matcher) ([]digest.Digest, error) {
	mf, err := Manifest(ctx, p, desc, m)
	if err != nil {
		return nil, err
	}
	diffIDs, err := RootFS(ctx, p, mf.Config)
	if err != nil {
		return nil, err
	}
	if len(diffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("image %s: config %s has %d diff IDs for %d layers: %w",
			desc.Digest, mf.Config.Digest, len(diffIDs), len(mf.Layers), errdefs.ErrInvalidArgument)
	}
	return diffIDs, nil
}

// ChainID is the identity of the stack of layers diffIDs, bottom first:
// ChainID(L0) = DiffID(L0), ChainID(L0…Ln) = sha256(ChainID(L0…Ln-1) + " " + DiffID(Ln)).
// It names the committed snapshot of that stack. Empty for no layers.
func ChainID(diffIDs []digest.Digest) digest.Digest {
	if len(diffIDs) == 0 {
		return ""
	}
	ids := ChainIDs(diffIDs)
	return ids[len(ids)-1]
}

// ChainIDs returns the chain ID of every prefix of diffIDs, in a new slice.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// Children returns the descriptors desc points at: the manifests of an
// index, the config then the layers of a manifest, nothing for other
// types. Schema 1 is NotImplemented.
func Children(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case IsManifest(desc.MediaType):
		mf, err := ReadManifest(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		return append([]ocispec.Descriptor{mf.Config}, mf.Layers...), nil
	case IsIndex(desc.MediaType):
		idx, err := ReadIndex(ctx, p, desc)
		if err != nil {
			return nil, err
		}
		return append([]ocispec.Descriptor(nil), idx.Manifests...), nil
	case IsSchema1(desc.MediaType):
		return nil, unexpectedType(desc, "a supported manifest")
	}
	return nil, nil
}

// filterPlatforms returns the descriptors that m matches or that carry no
// platform, in their order. A nil m keeps all.
func filterPlatforms(descs []ocispec.Descriptor, m Matcher) []ocispec.Descriptor {
	if m == nil {
		return descs
	}
	var out []ocispec.Descriptor
	for _, d := range descs {
		if d.Platform == nil || m.Match(*d.Platform) {
			out = append(out, d)
		}
	}
	return out
}

// sortPlatforms returns descs in a new slice ordered best platform first
// by m (stable; descriptors without a platform last).
func sortPlatforms(descs []ocispec.Descriptor, m Matcher) []ocispec.Descriptor {
	out := append([]ocispec.Descriptor(nil), descs...)
	if m == nil {
		return out
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Platform == nil {
			return false
		}
		if out[j].Platform == nil {
			return true
		}
		return m.Less(*out[i].Platform, *out[j].Platform)
	})
	return out
}

// ReadManifest reads and decodes the manifest desc (at most
// MaxManifestSize bytes).
func ReadManifest(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	var mf ocispec.Manifest
	if !IsManifest(desc.MediaType) {
		return mf, unexpectedType(desc, "a manifest")
	}
	if err := readJSON(ctx, p, desc, "manifest", MaxManifestSize, &mf); err != nil {
		return mf, err
	}
	if err := checkDescriptors("manifest", desc, append([]ocispec.Descriptor{mf.Config}, mf.Layers...)); err != nil {
		return ocispec.Manifest{}, err
	}
	return mf, nil
}

// ReadIndex reads and decodes the index desc (at most MaxIndexSize bytes).
func ReadIndex(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (ocispec.Index, error) {
	var idx ocispec.Index
	if !IsIndex(desc.MediaType) {
		return idx, unexpectedType(desc, "an index")
	}
	if err := readJSON(ctx, p, desc, "index", MaxIndexSize, &idx); err != nil {
		return idx, err
	}
	if err := checkDescriptors("index", desc, idx.Manifests); err != nil {
		return ocispec.Index{}, err
	}
	return idx, nil
}

// ReadConfig reads and decodes the image config configDesc (at most
// MaxConfigSize bytes) and checks its rootfs type.
func ReadConfig(ctx context.Context, p content.Provider, configDesc ocispec.Descriptor) (ocispec.Image, error) {
	var img ocispec.Image
	if !IsConfig(configDesc.MediaType) {
		return img, unexpectedType(configDesc, "an image config")
	}
	if err := readJSON(ctx, p, configDesc, "config", MaxConfigSize, &img); err != nil {
		return img, err
	}
	if img.RootFS.Type != "layers" {
		return img, fmt.Errorf("config %s: rootfs type %q, want \"layers\": %w", configDesc.Digest, img.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	// DiffIDs name snapshots and the keys of their unpacking.
	for i, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return ocispec.Image{}, fmt.Errorf("config %s: diff ID %d %q: %w: %w", configDesc.Digest, i, d, err, errdefs.ErrInvalidArgument)
		}
	}
	return img, nil
}

// checkDescriptors refuses the blob desc when one of the descriptors it
// lists can match no blob: an invalid digest or a negative size. Caught
// here, they never reach a fetch, an ingest or a snapshot name.
func checkDescriptors(what string, desc ocispec.Descriptor, descs []ocispec.Descriptor) error {
	for i, d := range descs {
		if err := d.Digest.Validate(); err != nil {
			return fmt.Errorf("%s %s: descriptor %d: digest %q: %w: %w", what, desc.Digest, i, d.Digest, err, errdefs.ErrInvalidArgument)
		}
		if d.Size < 0 {
			return fmt.Errorf("%s %s: descriptor %d (%s): size %d: %w", what, desc.Digest, i, d.Digest, d.Size, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// readJSON reads the blob desc, at most limit bytes, checks its size and
// digest, checks that its shape and mediaType field agree with desc's
// media type, and decodes it into v.
func readJSON(ctx context.Context, p content.Provider, desc ocispec.Descriptor, what string, limit int64, v any) error {
	b, err := readBlob(ctx, p, desc, what, limit)
	if err != nil {
		return err
	}
	if IsManifest(desc.MediaType) || IsIndex(desc.MediaType) {
		if err := checkShape(desc, what, b); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: decode: %w: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readBlob reads the whole blob desc into memory, refusing blobs over
// limit bytes (InvalidArgument), and checks the bytes against desc's size
// and digest (FailedPrecondition). what names the blob in errors.
func readBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, what string, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, overLimit(desc, what, desc.Size, limit)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, desc.Digest, err)
	}
	defer ra.Close()
	size := ra.Size()
	if size > limit {
		return nil, overLimit(desc, what, size, limit)
	}
	if size != desc.Size {
		return nil, fmt.Errorf("%s %s: blob is %d bytes, descriptor says %d: %w", what, desc.Digest, size, desc.Size, errdefs.ErrFailedPrecondition)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(ra, 0, size), b); err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", what, desc.Digest, err)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s %q: %w: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%s %s: content has digest %s: %w", what, desc.Digest, got, errdefs.ErrFailedPrecondition)
	}
	return b, nil
}

func overLimit(desc ocispec.Descriptor, what string, size, limit int64) error {
	return fmt.Errorf("%s %s is %d bytes, over the limit of %d: %w", what, desc.Digest, size, limit, errdefs.ErrInvalidArgument)
}

func unexpectedType(desc ocispec.Descriptor, want string) error {
	class := errdefs.ErrInvalidArgument
	if IsSchema1(desc.MediaType) {
		class = errdefs.ErrNotImplemented
	}
	return fmt.Errorf("descriptor %s: media type %q is not %s: %w", desc.Digest, desc.MediaType, want, class)
}

// checkShape refuses a manifest that looks like an index or the other way
// round, and a mediaType field that contradicts the descriptor: a
// registry must not be able to make one blob mean two things.
func checkShape(desc ocispec.Descriptor, what string, b []byte) error {
	var shape struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &shape); err != nil {
		return fmt.Errorf("%s %s: decode: %w: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	bad := ""
	switch {
	case IsManifest(desc.MediaType) && shape.Manifests != nil:
		bad = "a manifest with a \"manifests\" field"
	case IsIndex(desc.MediaType) && (shape.Config != nil || shape.Layers != nil):
		bad = "an index with a \"config\" or \"layers\" field"
	case (IsManifest(desc.MediaType) || IsIndex(desc.MediaType)) && shape.MediaType != "" && shape.MediaType != desc.MediaType:
		bad = fmt.Sprintf("mediaType %q in a blob of type %q", shape.MediaType, desc.MediaType)
	}
	if bad != "" {
		return fmt.Errorf("%s %s: %s: %w", what, desc.Digest, bad, errdefs.ErrInvalidArgument)
	}
	return nil
}
