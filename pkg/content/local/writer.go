package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Writer implements content.Ingester.
//
// Opening an existing ingest resumes it: the offset is the size of its data
// file and the digest state is rebuilt by hashing that data. If the recorded
// expectations contradict desc (another digest, another total, or more data
// than desc.Size), the old bytes cannot become the blob the caller asks for,
// so the ingest is restarted empty under the new expectations, as containerd
// does, rather than failing a pull that would otherwise need an Abort first.
func (s *store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("writer: ref is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if wo.Desc.Digest != "" {
		p, err := s.blobPath(wo.Desc.Digest)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("blob %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
	if err := s.lockRef(wo.Ref); err != nil {
		return nil, err
	}
	w, err := s.openIngest(ctx, wo.Ref, wo.Desc)
	if err != nil {
		s.unlockRef(wo.Ref)
		return nil, err
	}
	return w, nil
}

// openIngest creates or resumes the ingest of ref; the caller holds the lock.
func (s *store) openIngest(ctx context.Context, ref string, desc ocispec.Descriptor) (*writer, error) {
	dir := s.ingestDir(ref)
	now := time.Now()
	st, err := readStatus(dir)
	switch {
	case err == nil && st.Ref == ref && resumable(st, desc):
		// Keep what was recorded; fill in what the caller knows now.
		if err = recordExpectations(dir, &st, desc); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
	case err == nil || errdefs.IsNotFound(err):
		if err == nil || dirExists(dir) {
			// Contradicting expectations, or a directory that was never
			// whole: start again.
			if err = s.removeIngest(dir); err != nil {
				return nil, err
			}
		}
		st = content.Status{Ref: ref, Total: desc.Size, Expected: desc.Digest, StartedAt: now}
		err = s.createIngest(dir, ref, desc.Size, desc.Digest, now)
	}
	if err != nil {
		return nil, err
	}
	w := &writer{s: s, ref: ref, dir: dir, total: st.Total, expected: st.Expected, startedAt: st.StartedAt, updatedAt: now}
	if err := w.open(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// recordExpectations writes into a resumed ingest what the caller knows now
// and the ingest did not.
func recordExpectations(dir string, st *content.Status, desc ocispec.Descriptor) error {
	if st.Expected == "" && desc.Digest != "" {
		st.Expected = desc.Digest
		if err := os.WriteFile(filepath.Join(dir, expectedFile), []byte(desc.Digest), fileMode); err != nil {
			return err
		}
	}
	if st.Total <= 0 && desc.Size > 0 {
		st.Total = desc.Size
		return os.WriteFile(filepath.Join(dir, totalFile), []byte(strconv.FormatInt(desc.Size, 10)), fileMode)
	}
	return nil
}

func resumable(st content.Status, desc ocispec.Descriptor) bool {
	if desc.Digest != "" && st.Expected != "" && desc.Digest != st.Expected {
		return false
	}
	if desc.Size > 0 && st.Total > 0 && desc.Size != st.Total {
		return false
	}
	return desc.Size <= 0 || st.Offset <= desc.Size
}

func dirExists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

// writeBehind is how many bytes a writer lets accumulate before it starts
// their writeback: large enough that small blobs never pay for it, small
// enough to keep the disk busy from early on.
const writeBehind = 8 << 20

// writer is an open ingest. It is safe for concurrent use (a progress
// reporter may call Status while another goroutine writes), but bytes from
// concurrent Writes land in whatever order the calls take the lock.
type writer struct {
	s   *store
	ref string
	dir string

	mu        sync.Mutex // guards everything below
	fp        *os.File   // nil once closed or committed: the ref is released
	digester  digest.Digester
	offset    int64
	flushed   int64 // writeback was started up to here (see startWriteback)
	dropped   int64 // the pages up to here were written back and dropped (see dropWritten)
	total     int64
	expected  digest.Digest
	startedAt time.Time
	updatedAt time.Time
}

func (w *writer) dataPath() string { return filepath.Join(w.dir, dataFile) }

func (w *writer) algorithm() digest.Algorithm {
	if w.expected != "" {
		return w.expected.Algorithm()
	}
	return digest.Canonical
}

// open opens the data file and rebuilds the digest state from what it
// holds, leaving the file offset at its end.
func (w *writer) open(ctx context.Context) error {
	fp, err := os.OpenFile(w.dataPath(), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) {
		// A crash between Commit's chmod and its link leaves the data
		// read-only; it is still ours.
		if err = os.Chmod(w.dataPath(), fileMode); err == nil {
			fp, err = os.OpenFile(w.dataPath(), os.O_RDWR, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	w.digester = w.algorithm().Digester()
	n, err := copyCtx(ctx, w.digester.Hash(), fp)
	if err != nil {
		fp.Close()
		return fmt.Errorf("ingest %q: rehash: %w", w.ref, err)
	}
	w.fp, w.offset, w.flushed, w.dropped = fp, n, n, n
	return nil
}

// copyCtx copies src to dst in large chunks, checking ctx between them, so
// rehashing a big partial ingest can be cancelled.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := src.Read(buf)
		if m > 0 {
			dst.Write(buf[:m]) // a hash.Hash never fails
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (w *writer) closedError() error {
	return fmt.Errorf("ingest %q: writer is closed: %w", w.ref, errdefs.ErrFailedPrecondition)
}

// Write appends p to the ingest. No fsync here: Commit syncs once, and an
// ingest torn by a crash is only ever resumed or verified, never trusted.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fp == nil {
		return 0, w.closedError()
	}
	n, err := w.fp.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	w.updatedAt = time.Now()
	if w.offset-w.flushed >= writeBehind {
		startWriteback(w.fp, w.flushed, w.offset-w.flushed)
		w.flushed = w.offset
		// Two chunks behind, the writeback has had time to run: wait
		// for what is left of it and drop those pages.
		if end := w.flushed - 2*writeBehind; end > w.dropped {
			dropWritten(w.fp, w.dropped, end-w.dropped)
			w.dropped = end
		}
	}
	if err != nil {
		return n, fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return n, nil
}

// Digest implements content.Writer.
func (w *writer) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

// Status implements content.Writer.
func (w *writer) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.total,
		Expected:  w.expected,
		StartedAt: w.startedAt,
		UpdatedAt: w.updatedAt,
	}, nil
}

// Truncate implements content.Writer. Only 0 (restart) is supported, and
// the current size as a no-op.
func (w *writer) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fp == nil {
		return w.closedError()
	}
	if size == w.offset {
		return nil
	}
	if size != 0 {
		return fmt.Errorf("ingest %q: truncate to %d: only 0 is supported: %w", w.ref, size, errdefs.ErrNotImplemented)
	}
	if err := w.fp.Truncate(0); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	if _, err := w.fp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	w.digester = w.algorithm().Digester()
	w.offset, w.flushed, w.dropped = 0, 0, 0
	w.updatedAt = time.Now()
	return nil
}

// Close releases the ref and keeps the ingest for a later resume. Closing a
// committed or closed writer does nothing.
func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fp == nil {
		return nil
	}
	err := writeTime(filepath.Join(w.dir, updatedAtFile), w.updatedAt)
	if cerr := w.fp.Close(); err == nil {
		err = cerr
	}
	w.release()
	if err != nil {
		return fmt.Errorf("ingest %q: close: %w", w.ref, err)
	}
	return nil
}

// release forgets the file and frees the ref; w.mu is held.
func (w *writer) release() {
	w.fp = nil
	w.s.unlockRef(w.ref)
}

// Sync makes the bytes written so far durable (content.Syncer).
func (w *writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fp == nil {
		return w.closedError()
	}
	if err := w.fp.Sync(); err != nil {
		return fmt.Errorf("ingest %q: sync: %w", w.ref, err)
	}
	return nil
}
