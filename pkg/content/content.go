// Package content defines the content store: content-addressed blobs and the
// ingests that write them.
//
// A Store is four small interfaces: Provider (read), Ingester (write),
// Manager (info, labels, walk, delete) and IngestManager (status and abort
// of ingests in progress). Backends live in sub-packages (local/), the
// namespaced view lives in pkg/meta, and the gRPC client in pkg/server's
// client side; testsuite/ runs the same tests against all of them.
//
// Vocabulary:
//   - a blob is committed content, named by its digest;
//   - an ingest is a blob being written under a ref (any caller-chosen
//     string, "fetch-sha256:..." for pulls). One writer holds a ref at a
//     time; a second gets Unavailable until the first closes. An ingest
//     outlives its writer (and the daemon): reopening the ref resumes from
//     Status().Offset; Truncate(0) restarts it.
//
// This package imports only leaves, go-digest and image-spec.
package content

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReaderAt reads a committed blob at random offsets.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Provider gives access to committed blobs.
type Provider interface {
	// ReaderAt opens desc.Digest. Only Digest (and Size, if known, to check
	// against) are used. NotFound if the blob is not committed.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Ingester opens writers for new blobs.
type Ingester interface {
	// Writer opens the ingest for the options' Ref, creating it or resuming
	// it. Unavailable if another writer holds the ref. AlreadyExists if the
	// expected digest is already committed.
	Writer(ctx context.Context, opts ...WriterOpt) (Writer, error)
}

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Labels    map[string]string
}

// Manager manages committed blobs.
type Manager interface {
	// Info returns the blob's info; NotFound if it is not committed.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Update changes the blob's labels. fieldpaths are "labels" (replace
	// all) or "labels.<key>" (set or, when absent from info, remove one);
	// none means "labels". Other paths are InvalidArgument.
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Walk calls fn for every committed blob matching any of filters
	// (filter syntax of pkg/filters; fields: digest, size, labels.<key>).
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	// Delete removes the blob; NotFound if it is not committed.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// WalkFunc is called by Walk for each blob. Returning an error stops the walk.
type WalkFunc func(Info) error

// Status is the state of an ingest.
type Status struct {
	Ref       string
	Offset    int64
	Total     int64
	Expected  digest.Digest
	StartedAt time.Time
	UpdatedAt time.Time
}

// IngestManager manages ingests in progress.
type IngestManager interface {
	// Status returns the state of the ingest ref; NotFound if none.
	Status(ctx context.Context, ref string) (Status, error)
	// ListStatuses returns ingests matching any of filters (fields: ref,
	// expected, total).
	ListStatuses(ctx context.Context, filters ...string) ([]Status, error)
	// Abort removes the ingest ref and its data; NotFound if none.
	Abort(ctx context.Context, ref string) error
}

// Store is the whole content store.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// Writer writes an ingest. Write appends at Status().Offset. Close releases
// the ref without committing; the ingest stays for a later resume.
type Writer interface {
	io.WriteCloser
	// Digest is the digest of the bytes written so far.
	Digest() digest.Digest
	// Commit checks the size and digest against size/expected (zero values:
	// not checked beyond the writer's own expectations), moves the ingest
	// into the blob store and releases the ref. A mismatch is
	// FailedPrecondition and commits nothing. If the blob already exists the
	// ingest is discarded and AlreadyExists is returned.
	Commit(ctx context.Context, size int64, expected digest.Digest, opts ...Opt) error
	// Status returns the ingest's state.
	Status() (Status, error)
	// Truncate discards everything after size. Only 0 is supported by every
	// backend; it restarts the ingest.
	Truncate(size int64) error
}

// Syncer is a Writer that can make the bytes written so far durable
// before Commit, so that a caller can run that slow part outside its own
// locks. Commit still syncs whatever is left.
type Syncer interface {
	Sync() error
}

// Opt configures a commit or an Info update.
type Opt func(*Info) error

// WithLabels sets labels on the committed blob.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		info.Labels = labels
		return nil
	}
}

// WriterOpts are the options of Ingester.Writer.
type WriterOpts struct {
	Ref  string
	Desc ocispec.Descriptor // Digest and Size expected, when known
}

// WriterOpt sets a WriterOpts field.
type WriterOpt func(*WriterOpts) error

// WithRef names the ingest. Required.
func WithRef(ref string) WriterOpt {
	return func(o *WriterOpts) error {
		o.Ref = ref
		return nil
	}
}

// WithDescriptor states the expected digest and size up front.
func WithDescriptor(desc ocispec.Descriptor) WriterOpt {
	return func(o *WriterOpts) error {
		o.Desc = desc
		return nil
	}
}
