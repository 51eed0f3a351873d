package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	labelpath "github.com/cri-runtime/cri-runtime/pkg/labels"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Store is a content.Provider and content.Manager over a map, for tests
// of code that reads blobs and sets labels but does not ingest. It is a
// small real implementation, not a mock: Update follows the field-path
// rules of content.Manager. Walk supports no filters.
type Store struct {
	mu    sync.Mutex // guards blobs and infos
	blobs map[digest.Digest][]byte
	infos map[digest.Digest]content.Info
}

// NewStore returns a store holding the blobs of bs.
func NewStore(bs ...Built) *Store {
	s := &Store{blobs: map[digest.Digest][]byte{}, infos: map[digest.Digest]content.Info{}}
	for _, b := range bs {
		s.Add(b.Blobs...)
	}
	return s
}

// Add commits blobs (the data is not checked against the descriptors, so
// that tests can store corrupt blobs).
func (s *Store) Add(blobs ...Blob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, b := range blobs {
		s.blobs[b.Desc.Digest] = bytes.Clone(b.Data)
		s.infos[b.Desc.Digest] = content.Info{Digest: b.Desc.Digest, Size: int64(len(b.Data)), CreatedAt: now, UpdatedAt: now}
	}
}

// ReaderAt implements content.Provider.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return readerAt{bytes.NewReader(b)}, nil
}

type readerAt struct{ *bytes.Reader }

func (readerAt) Close() error { return nil }

// Info implements content.Manager.
func (s *Store) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.infos[d]
	if !ok {
		return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	info.Labels = maps.Clone(info.Labels)
	return info, nil
}

// Update implements content.Manager.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.infos[info.Digest]
	if !ok {
		return content.Info{}, fmt.Errorf("blob %s: %w", info.Digest, errdefs.ErrNotFound)
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	labels := maps.Clone(cur.Labels)
	for _, f := range fieldpaths {
		if !labelpath.ApplyPath(&labels, info.Labels, "labels", f) {
			return content.Info{}, fmt.Errorf("blob %s: field path %q: %w", info.Digest, f, errdefs.ErrInvalidArgument)
		}
	}
	cur.Labels = labels
	cur.UpdatedAt = time.Now()
	s.infos[info.Digest] = cur
	cur.Labels = maps.Clone(labels)
	return cur, nil
}

// Walk implements content.Manager without filters.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	if len(filters) > 0 {
		return fmt.Errorf("imagetest store: filters: %w", errdefs.ErrNotImplemented)
	}
	s.mu.Lock()
	infos := make([]content.Info, 0, len(s.infos))
	for _, info := range s.infos {
		info.Labels = maps.Clone(info.Labels)
		infos = append(infos, info)
	}
	s.mu.Unlock()
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements content.Manager.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[d]; !ok {
		return fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	delete(s.blobs, d)
	delete(s.infos, d)
	return nil
}
