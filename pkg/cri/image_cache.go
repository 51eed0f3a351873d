package cri

import (
	"context"
	"fmt"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// blobCache keeps what ImageStatus decodes of content blobs: the children
// of each manifest and index, the config each image target selects for
// the host's platform, the user of each config. A blob's bytes are its
// digest's, so what is decoded of them never changes; whether the blobs
// are still there is asked each time (one Info per blob of the image, as
// before), and what needs a blob that is gone is read again, to fail as
// it did. Decoding the same three JSON blobs twice per call, each opened
// from its file, was most of ImageStatus.
type blobCache struct {
	mu       sync.Mutex
	children map[blobKey][]ocispec.Descriptor
	configs  map[blobKey]selectedConfig
	users    map[blobKey]string
}

// maxBlobCache bounds the entries of each map of a blobCache: past it the
// map starts again, empty. Images come and go on a node for months.
const maxBlobCache = 4096

// blobKey is a descriptor as the decoding depends on it.
type blobKey struct {
	digest    digest.Digest
	mediaType string
	size      int64
}

func keyOf(desc ocispec.Descriptor) blobKey {
	return blobKey{digest: desc.Digest, mediaType: desc.MediaType, size: desc.Size}
}

// selectedConfig is the config of an image target for the host's
// platform, and the blobs read to find it.
type selectedConfig struct {
	config ocispec.Descriptor
	read   []digest.Digest
}

// imageContent is what criImage reads of an image's content: the bytes
// of its blobs present (each counted once) and the user of its config for
// the host's platform. It is images.Size (without the unpacked usage)
// and images.Config, with what they decode taken from the cache.
func (s *Service) imageContent(ctx context.Context, img meta.Image) (size int64, user string, err error) {
	cs := s.db.ContentStore()
	present := map[digest.Digest]bool{}
	walk := image.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, seen := present[desc.Digest]; seen {
			return nil, image.ErrSkipDesc
		}
		info, err := cs.Info(ctx, desc.Digest)
		present[desc.Digest] = err == nil
		if errdefs.IsNotFound(err) {
			return nil, image.ErrSkipDesc
		}
		if err != nil {
			return nil, err
		}
		size += info.Size
		return s.listed.blobs.childrenOf(ctx, cs, desc)
	})
	if err := image.Walk(ctx, walk, img.Target); err != nil {
		return 0, "", fmt.Errorf("image %q: size: %w", img.Name, err)
	}
	user, err = s.listed.blobs.userOf(ctx, cs, img.Target, present)
	if err != nil {
		return 0, "", fmt.Errorf("image %q: %w", img.Name, err)
	}
	return size, user, nil
}

// childrenOf is image.Children of desc, decoded once.
func (c *blobCache) childrenOf(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !image.IsManifest(desc.MediaType) && !image.IsIndex(desc.MediaType) {
		return image.Children(ctx, p, desc) // no blob read
	}
	k := keyOf(desc)
	c.mu.Lock()
	children, ok := c.children[k]
	c.mu.Unlock()
	if ok {
		return children, nil
	}
	children, err := image.Children(ctx, p, desc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.children == nil || len(c.children) >= maxBlobCache {
		c.children = map[blobKey][]ocispec.Descriptor{}
	}
	c.children[k] = children
	c.mu.Unlock()
	return children, nil
}

// userOf is the user of the config of target for the host's platform
// (image.Manifest, then image.ReadConfig), decoded once: the cached
// answer is used while every blob read to find it is present.
func (c *blobCache) userOf(ctx context.Context, p content.Provider, target ocispec.Descriptor, present map[digest.Digest]bool) (string, error) {
	k := keyOf(target)
	c.mu.Lock()
	sel, ok := c.configs[k]
	user, userOK := c.users[keyOf(sel.config)]
	c.mu.Unlock()
	if ok && userOK && allPresent(sel.read, present) {
		return user, nil
	}
	rec := &readRecorder{p: p}
	mf, err := image.Manifest(ctx, rec, target, image.Only(image.DefaultPlatform()))
	if err != nil {
		return "", err
	}
	cfg, err := image.ReadConfig(ctx, rec, mf.Config)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.configs == nil || len(c.configs) >= maxBlobCache {
		c.configs, c.users = map[blobKey]selectedConfig{}, map[blobKey]string{}
	}
	c.configs[k] = selectedConfig{config: mf.Config, read: rec.read}
	c.users[keyOf(mf.Config)] = cfg.Config.User
	c.mu.Unlock()
	return cfg.Config.User, nil
}

func allPresent(ds []digest.Digest, present map[digest.Digest]bool) bool {
	for _, d := range ds {
		if !present[d] {
			return false
		}
	}
	return true
}

// readRecorder is a content.Provider that records the blobs read.
type readRecorder struct {
	p    content.Provider
	read []digest.Digest
}

func (r *readRecorder) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	r.read = append(r.read, desc.Digest)
	return r.p.ReaderAt(ctx, desc)
}
