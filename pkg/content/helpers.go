package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyBufferSize is the chunk Copy reads and writes: large enough that a
// 1 GiB blob costs about a thousand write syscalls and hash calls, small
// enough to allocate per copy.
const copyBufferSize = 1 << 20

// Backoff bounds of OpenWriter while a ref is locked.
const (
	openWriterMinBackoff = 5 * time.Millisecond
	openWriterMaxBackoff = 500 * time.Millisecond
)

// ReadBlob reads the whole blob desc into memory. Use it for manifests,
// indexes and configs, not layers.
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor) ([]byte, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	buf := make([]byte, ra.Size())
	n, err := ra.ReadAt(buf, 0)
	if errors.Is(err, io.EOF) && int64(n) == ra.Size() {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return buf, nil
}

// NewReader reads ra sequentially from its start. The result is also an
// io.Seeker, so Copy can resume from it.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}

// OpenWriter opens a writer like ing.Writer, but while the ref is locked by
// another writer (Unavailable) it waits, with a backoff from 5 ms doubling
// to 500 ms, until the ref is free or ctx is done. This is how concurrent
// pulls of the same blob queue behind each other; the one that comes second
// usually gets AlreadyExists.
func OpenWriter(ctx context.Context, ing Ingester, opts ...WriterOpt) (Writer, error) {
	backoff := openWriterMinBackoff
	for {
		w, err := ing.Writer(ctx, opts...)
		if err == nil || !errdefs.IsUnavailable(err) {
			return w, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			var wo WriterOpts
			for _, opt := range opts {
				_ = opt(&wo) // already accepted by ing.Writer
			}
			return nil, fmt.Errorf("ref %q: still locked: %w", wo.Ref, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, openWriterMaxBackoff)
	}
}

// Copy writes r into w and commits it with size and expected (zero values:
// not checked). If w resumes an ingest (Status().Offset > 0), r is sought to
// that offset when it is an io.Seeker; otherwise the ingest restarts with
// Truncate(0). AlreadyExists from Commit counts as success: the blob is there.
// Copy does not close w.
func Copy(ctx context.Context, w Writer, r io.Reader, size int64, expected digest.Digest, opts ...Opt) error {
	st, err := w.Status()
	if err != nil {
		return err
	}
	if st.Offset > 0 {
		if err := seekOrRestart(w, r, st.Offset, size); err != nil {
			return err
		}
	}
	if err := copyChunks(ctx, st.Ref, w, r); err != nil {
		return err
	}
	if err := w.Commit(ctx, size, expected, opts...); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// seekOrRestart lines r up with an ingest that already holds offset bytes.
func seekOrRestart(w Writer, r io.Reader, offset, size int64) error {
	if size <= 0 || offset <= size {
		if s, ok := r.(io.Seeker); ok {
			if _, err := s.Seek(offset, io.SeekStart); err == nil {
				return nil
			}
			// A failed seek leaves r where it was: at the start.
		}
	}
	return w.Truncate(0)
}

// copyChunks copies r to w in large chunks, checking ctx between them. It
// does not use io.Copy: the WriterTo of *os.File would copy in 32 KiB
// pieces, a write syscall and a hash call each.
// Errors of w are returned as they are: they already name the ingest.
func copyChunks(ctx context.Context, ref string, w io.Writer, r io.Reader) error {
	buf := make([]byte, copyBufferSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil
		case rerr != nil:
			return fmt.Errorf("ingest %q: read source: %w", ref, rerr)
		}
	}
}

// WriteBlob writes r as the blob desc through the ingest ref: OpenWriter,
// then Copy. A blob that is already committed is success.
func WriteBlob(ctx context.Context, ing Ingester, ref string, r io.Reader, desc ocispec.Descriptor, opts ...Opt) error {
	w, err := OpenWriter(ctx, ing, WithRef(ref), WithDescriptor(desc))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	defer w.Close()
	return Copy(ctx, w, r, desc.Size, desc.Digest, opts...)
}
