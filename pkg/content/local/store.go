// Package local is the content store on a local filesystem: committed blobs
// as plain files named by their digest, and ingests as directories that
// survive the writer, the daemon and a crash.
//
// Layout under the root (directories 0700, files 0600 unless said):
//
//	blobs/<alg>/<hex>         committed blob, mode 0444, never written again
//	ingest/<sha256(ref)>/     one ingest:
//	    ref                   the ref as given to Writer
//	    data                  the bytes written so far; its size is the offset
//	    startedat, updatedat  RFC 3339 times
//	    total                 expected size in bytes, 0 when unknown
//	    expected              expected digest, empty when unknown
//	ingest/.tmp-*             ingests being created or removed; never listed,
//	                          removed by NewStore
//
// A blob appears by a hard link (or rename) of a verified, fsynced data file
// followed by an fsync of the blob directory, so nothing half-written is ever
// visible under blobs/. Ingest directories are built under a temporary name
// and renamed into place, and removed by renaming them away first, so an
// ingest is either whole or absent whatever moment the process dies at.
//
// Labels are kept in memory only and are lost on restart: this backend sits
// under pkg/meta, which persists labels (and namespaces, leases, GC state) in
// its database. The ref lock is in-process: one daemon owns a root.
//
// This package knows nothing of namespaces, leases or GC. It imports only
// pkg/content, pkg/errdefs, pkg/filters, go-digest and image-spec.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	labelpath "github.com/cri-runtime/cri-runtime/pkg/labels"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	dirMode  = 0o700
	fileMode = 0o600
	blobMode = 0o444
)

// store is the local content.Store.
type store struct {
	root string

	refsMu sync.Mutex
	refs   map[string]struct{} // guarded by refsMu: refs held by a writer or an abort

	// labelsMu also orders blob creation and removal against label changes,
	// so a deleted blob never keeps labels that a later commit would inherit.
	labelsMu sync.Mutex
	labels   map[digest.Digest]blobLabels // guarded by labelsMu
}

type blobLabels struct {
	labels    map[string]string
	updatedAt time.Time
}

// NewStore opens (creating if needed) the content store under root. Ingest
// directories left half-created or half-removed by a crash are cleaned up;
// whole ingests are kept for resumption.
func NewStore(root string) (content.Store, error) {
	if root == "" {
		return nil, fmt.Errorf("content store root is required: %w", errdefs.ErrInvalidArgument)
	}
	s := &store{
		root:   root,
		refs:   map[string]struct{}{},
		labels: map[digest.Digest]blobLabels{},
	}
	for _, dir := range []string{root, s.blobsRoot(), s.ingestRoot()} {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	if err := s.removeTemporaries(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) blobsRoot() string  { return filepath.Join(s.root, "blobs") }
func (s *store) ingestRoot() string { return filepath.Join(s.root, "ingest") }

// blobPath returns where dgst lives; InvalidArgument for a malformed digest
// or one whose algorithm this binary cannot compute.
func (s *store) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(s.blobsRoot(), dgst.Algorithm().String(), dgst.Encoded()), nil
}

// Info implements content.Manager.
func (s *store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := ctx.Err(); err != nil {
		return content.Info{}, err
	}
	p, err := s.blobPath(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return content.Info{}, blobError(dgst, err)
	}
	s.labelsMu.Lock()
	defer s.labelsMu.Unlock()
	return s.infoLocked(dgst, fi), nil
}

// infoLocked builds the Info of a blob; CreatedAt is the commit time, which
// Commit stamps as the file's mtime.
func (s *store) infoLocked(dgst digest.Digest, fi fs.FileInfo) content.Info {
	info := content.Info{
		Digest:    dgst,
		Size:      fi.Size(),
		CreatedAt: fi.ModTime(),
		UpdatedAt: fi.ModTime(),
	}
	if bl, ok := s.labels[dgst]; ok {
		info.Labels = copyLabels(bl.labels)
		if bl.updatedAt.After(info.UpdatedAt) {
			info.UpdatedAt = bl.updatedAt
		}
	}
	return info
}

// Update implements content.Manager. Labels live in memory only (see the
// package doc).
func (s *store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	if err := ctx.Err(); err != nil {
		return content.Info{}, err
	}
	p, err := s.blobPath(info.Digest)
	if err != nil {
		return content.Info{}, err
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	s.labelsMu.Lock()
	defer s.labelsMu.Unlock()
	fi, err := os.Stat(p)
	if err != nil {
		return content.Info{}, blobError(info.Digest, err)
	}
	labels := copyLabels(s.labels[info.Digest].labels)
	for _, fp := range fieldpaths {
		if !labelpath.ApplyPath(&labels, info.Labels, "labels", fp) {
			return content.Info{}, fmt.Errorf("blob %s: field path %q: %w", info.Digest, fp, errdefs.ErrInvalidArgument)
		}
	}
	s.setLabelsLocked(info.Digest, labels)
	return s.infoLocked(info.Digest, fi), nil
}

func (s *store) setLabelsLocked(dgst digest.Digest, labels map[string]string) {
	if len(labels) == 0 {
		delete(s.labels, dgst)
		return
	}
	s.labels[dgst] = blobLabels{labels: labels, updatedAt: time.Now()}
}

// Walk implements content.Manager. Files under blobs/ whose names are not
// valid digests are skipped: nothing of ours puts them there.
func (s *store) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return fmt.Errorf("walk filters: %w", err)
	}
	algs, err := os.ReadDir(s.blobsRoot())
	if err != nil {
		return fmt.Errorf("walk %s: %w", s.blobsRoot(), err)
	}
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.blobsRoot(), alg.Name()))
		if err != nil {
			return fmt.Errorf("walk %s: %w", alg.Name(), err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
			if !e.Type().IsRegular() || dgst.Validate() != nil {
				continue
			}
			info, ok := s.walkInfo(dgst, e)
			if !ok || !filter.Match(infoAdaptor(info)) {
				continue
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkInfo returns the Info of a listed blob, false if it was deleted since.
func (s *store) walkInfo(dgst digest.Digest, e fs.DirEntry) (content.Info, bool) {
	fi, err := e.Info()
	if err != nil {
		return content.Info{}, false
	}
	s.labelsMu.Lock()
	defer s.labelsMu.Unlock()
	return s.infoLocked(dgst, fi), true
}

func infoAdaptor(info content.Info) filters.Adaptor {
	return filters.Map(map[string]string{
		"digest": info.Digest.String(),
		"size":   strconv.FormatInt(info.Size, 10),
	}, info.Labels)
}

// Delete implements content.Manager.
func (s *store) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	s.labelsMu.Lock()
	defer s.labelsMu.Unlock()
	if err := os.Remove(p); err != nil {
		return blobError(dgst, err)
	}
	delete(s.labels, dgst)
	return nil
}

// ReaderAt implements content.Provider. A descriptor whose Size disagrees
// with the blob is FailedPrecondition.
func (s *store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, blobError(desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && desc.Size != fi.Size() {
		f.Close()
		return nil, fmt.Errorf("blob %s: size is %d, descriptor says %d: %w",
			desc.Digest, fi.Size(), desc.Size, errdefs.ErrFailedPrecondition)
	}
	return &readerAt{File: f, size: fi.Size()}, nil
}

// readerAt is an open blob. The size is taken once: blobs never change.
type readerAt struct {
	*os.File
	size int64
}

func (r *readerAt) Size() int64 { return r.size }

// blobError classifies a filesystem error about a blob.
func blobError(dgst digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", dgst, err)
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
