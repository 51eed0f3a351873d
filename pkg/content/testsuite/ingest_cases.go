package testsuite

import (
	"context"
	"io"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testWriteCommitReadBack(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(1, 100_000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "write-1", ocispec.Descriptor{})
	mustWrite(t, w, b[:40_000])
	mustWrite(t, w, b[40_000:])
	if got := w.Digest(); got != desc.Digest {
		t.Fatalf("Digest() = %s, want %s", got, desc.Digest)
	}
	if st := mustStatus(t, w); st.Offset != desc.Size || st.Ref != "write-1" {
		t.Fatalf("Status = %+v, want ref write-1 at offset %d", st, desc.Size)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
	info, _ := cs.Info(ctx, desc.Digest)
	if info.CreatedAt.IsZero() || info.UpdatedAt.Before(info.CreatedAt) {
		t.Fatalf("Info times: created %v, updated %v", info.CreatedAt, info.UpdatedAt)
	}
	_, err := cs.Status(ctx, "write-1")
	checkClass(t, "Status after commit", err, errdefs.IsNotFound, "NotFound")
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatalf("ReaderAt: %v", err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		t.Fatalf("ReaderAt.Size() = %d, want %d", ra.Size(), desc.Size)
	}
	// A ref is reusable once its blob is committed.
	w2 := mustOpen(ctx, t, cs, "write-1", ocispec.Descriptor{})
	if st := mustStatus(t, w2); st.Offset != 0 {
		t.Fatalf("reused ref starts at %d, want 0", st.Offset)
	}
}

func testExpectedUpFront(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(2, 30_000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "expected-1", desc)
	st := mustStatus(t, w)
	if st.Expected != desc.Digest || st.Total != desc.Size || st.Offset != 0 {
		t.Fatalf("Status = %+v, want expected %s total %d offset 0", st, desc.Digest, desc.Size)
	}
	mustWrite(t, w, b)
	// Zero values check nothing beyond what the writer was told.
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
}

func testEmptyBlob(ctx context.Context, t *testing.T, cs content.Store) {
	desc := descOf(nil)
	w := mustOpen(ctx, t, cs, "empty", desc)
	if err := w.Commit(ctx, 0, desc.Digest); err != nil {
		t.Fatalf("Commit of the empty blob: %v", err)
	}
	checkBlob(ctx, t, cs, desc, []byte{})
}

func testRefRequired(ctx context.Context, t *testing.T, cs content.Store) {
	_, err := cs.Writer(ctx, content.WithDescriptor(descOf([]byte("x"))))
	checkClass(t, "Writer without a ref", err, errdefs.IsInvalidArgument, "InvalidArgument")
}

func testCommitWrongSize(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(3, 5000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "wrong-size", ocispec.Descriptor{})
	mustWrite(t, w, b)
	err := w.Commit(ctx, desc.Size+1, desc.Digest)
	checkClass(t, "Commit with a wrong size", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	checkNotCommitted(ctx, t, cs, desc.Digest)
	if err := w.Close(); err != nil {
		t.Fatalf("Close after a failed commit: %v", err)
	}
	// The ingest is kept so the caller can decide: here, abort it.
	st, err := cs.Status(ctx, "wrong-size")
	if err != nil || st.Offset != desc.Size {
		t.Fatalf("Status after a failed commit = %+v, %v; want offset %d", st, err, desc.Size)
	}
	if err := cs.Abort(ctx, "wrong-size"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	checkNotCommitted(ctx, t, cs, desc.Digest)
}

func testCommitWrongDigest(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(4, 5000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "wrong-digest", ocispec.Descriptor{})
	bad := append([]byte{}, b...)
	bad[100] ^= 1
	mustWrite(t, w, bad)
	err := w.Commit(ctx, desc.Size, desc.Digest)
	checkClass(t, "Commit with a wrong digest", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	checkNotCommitted(ctx, t, cs, desc.Digest)
	checkNotCommitted(ctx, t, cs, digest.SHA256.FromBytes(bad))
	if st, err := cs.Status(ctx, "wrong-digest"); err != nil || st.Offset != desc.Size {
		t.Fatalf("Status after a failed commit = %+v, %v; want offset %d", st, err, desc.Size)
	}
	// The same writer can restart and get it right.
	if err := w.Truncate(0); err != nil {
		t.Fatalf("Truncate(0) after a failed commit: %v", err)
	}
	mustWrite(t, w, b)
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit after restart: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
}

func testCommitAgainstWriterExpectation(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(5, 5000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "writer-expects", desc)
	mustWrite(t, w, b[:4999])
	mustWrite(t, w, []byte{b[4999] ^ 0xff})
	err := w.Commit(ctx, 0, "")
	checkClass(t, "Commit of bytes the writer was not told", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	checkNotCommitted(ctx, t, cs, desc.Digest)

	short := mustOpen(ctx, t, cs, "writer-expects-size", desc)
	mustWrite(t, short, b[:100])
	err = short.Commit(ctx, 0, "")
	checkClass(t, "Commit short of the expected size", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	checkNotCommitted(ctx, t, cs, desc.Digest)
}

func testSecondWriterUnavailable(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(6, 2000)
	w1, err := cs.Writer(ctx, content.WithRef("locked"))
	if err != nil {
		t.Fatalf("first Writer: %v", err)
	}
	mustWrite(t, w1, b[:1000])
	_, err = cs.Writer(ctx, content.WithRef("locked"))
	checkClass(t, "second Writer on a held ref", err, errdefs.IsUnavailable, "Unavailable")
	err = cs.Abort(ctx, "locked")
	checkClass(t, "Abort of a held ref", err, errdefs.IsUnavailable, "Unavailable")
	// Another ref is not affected.
	other := mustOpen(ctx, t, cs, "locked-other", ocispec.Descriptor{})
	other.Close()
	if err := w1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w2 := mustOpen(ctx, t, cs, "locked", ocispec.Descriptor{})
	if st := mustStatus(t, w2); st.Offset != 1000 {
		t.Fatalf("second writer resumes at %d, want 1000", st.Offset)
	}
}

func testResumeAfterClose(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(7, 300_001)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "resume", desc)
	mustWrite(t, w, b[:123_457])
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st, err := cs.Status(ctx, "resume")
	if err != nil || st.Offset != 123_457 || st.Expected != desc.Digest || st.Total != desc.Size {
		t.Fatalf("Status of the closed ingest = %+v, %v", st, err)
	}
	w = mustOpen(ctx, t, cs, "resume", desc)
	if st := mustStatus(t, w); st.Offset != 123_457 {
		t.Fatalf("resumed at %d, want 123457", st.Offset)
	}
	if got, want := w.Digest(), digest.SHA256.FromBytes(b[:123_457]); got != want {
		t.Fatalf("resumed Digest() = %s, want %s", got, want)
	}
	mustWrite(t, w, b[123_457:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
}

// testResumeWithCopy runs the pull path: WriteBlob's Copy finds a partial
// ingest and continues from its offset.
func testResumeWithCopy(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(8, 2<<20+5)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "fetch-"+desc.Digest.String(), desc)
	mustWrite(t, w, b[:1<<20])
	w.Close()
	// A reader that fails if asked for the bytes already written.
	r := &fromOffsetReader{t: t, b: b, min: 1 << 20}
	if err := content.WriteBlob(ctx, cs, "fetch-"+desc.Digest.String(), r, desc); err != nil {
		t.Fatalf("WriteBlob resuming: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
}

type fromOffsetReader struct {
	t        *testing.T
	b        []byte
	off, min int64
}

func (r *fromOffsetReader) Read(p []byte) (int, error) {
	if r.off < r.min {
		r.t.Errorf("read at %d, before the resume offset %d", r.off, r.min)
	}
	if r.off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += int64(n)
	return n, nil
}

func (r *fromOffsetReader) Seek(offset int64, whence int) (int64, error) {
	if whence != 0 {
		r.t.Errorf("Seek whence %d", whence)
	}
	r.off = offset
	return offset, nil
}

func testTruncateRestarts(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(9, 10_000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "truncate", desc)
	mustWrite(t, w, randomBytes(10, 7000))
	if err := w.Truncate(0); err != nil {
		t.Fatalf("Truncate(0): %v", err)
	}
	if st := mustStatus(t, w); st.Offset != 0 {
		t.Fatalf("offset after Truncate(0) = %d", st.Offset)
	}
	if got, want := w.Digest(), digest.SHA256.FromBytes(nil); got != want {
		t.Fatalf("Digest() after Truncate(0) = %s, want %s", got, want)
	}
	mustWrite(t, w, b)
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit after Truncate(0): %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)
}

func testAbort(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(11, 4000)
	w := mustOpen(ctx, t, cs, "abort", ocispec.Descriptor{})
	mustWrite(t, w, b)
	w.Close()
	if err := cs.Abort(ctx, "abort"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	_, err := cs.Status(ctx, "abort")
	checkClass(t, "Status after Abort", err, errdefs.IsNotFound, "NotFound")
	err = cs.Abort(ctx, "abort")
	checkClass(t, "second Abort", err, errdefs.IsNotFound, "NotFound")
	checkNotCommitted(ctx, t, cs, digest.SHA256.FromBytes(b))
	w = mustOpen(ctx, t, cs, "abort", ocispec.Descriptor{})
	if st := mustStatus(t, w); st.Offset != 0 {
		t.Fatalf("ingest reopened after Abort starts at %d, want 0", st.Offset)
	}
}

func testStatus(ctx context.Context, t *testing.T, cs content.Store) {
	_, err := cs.Status(ctx, "nothing-here")
	checkClass(t, "Status of an unknown ref", err, errdefs.IsNotFound, "NotFound")
	b := randomBytes(12, 3000)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "status", desc)
	mustWrite(t, w, b[:1000])
	st, err := cs.Status(ctx, "status")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Ref != "status" || st.Offset != 1000 || st.Total != desc.Size || st.Expected != desc.Digest {
		t.Fatalf("Status = %+v, want ref status, offset 1000, total %d, expected %s", st, desc.Size, desc.Digest)
	}
	if st.StartedAt.IsZero() || st.UpdatedAt.Before(st.StartedAt) {
		t.Fatalf("Status times: started %v, updated %v", st.StartedAt, st.UpdatedAt)
	}
}

func testListStatusesFilters(ctx context.Context, t *testing.T, cs content.Store) {
	descs := map[string]ocispec.Descriptor{}
	for i, ref := range []string{"fetch-a", "fetch-b", "upload-c"} {
		b := randomBytes(uint64(20+i), 100+i)
		descs[ref] = descOf(b)
		w := mustOpen(ctx, t, cs, ref, descs[ref])
		mustWrite(t, w, b[:10])
		w.Close()
	}
	for _, c := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"fetch-a", "fetch-b", "upload-c"}},
		{[]string{"ref==fetch-b"}, []string{"fetch-b"}},
		{[]string{`ref~="^fetch-"`}, []string{"fetch-a", "fetch-b"}},
		{[]string{"expected==" + descs["upload-c"].Digest.String()}, []string{"upload-c"}},
		{[]string{"ref==fetch-a", "ref==upload-c"}, []string{"fetch-a", "upload-c"}},
		{[]string{"ref==fetch-a,expected==" + descs["fetch-b"].Digest.String()}, nil},
		{[]string{"ref==nothing"}, nil},
	} {
		sts, err := cs.ListStatuses(ctx, c.filters...)
		if err != nil {
			t.Fatalf("ListStatuses(%q): %v", c.filters, err)
		}
		got := map[string]bool{}
		for _, st := range sts {
			got[st.Ref] = true
			if st.Offset != 10 || st.Expected != descs[st.Ref].Digest {
				t.Errorf("ListStatuses(%q): %+v", c.filters, st)
			}
		}
		if len(got) != len(c.want) || len(sts) != len(c.want) {
			t.Errorf("ListStatuses(%q) = %v, want %v", c.filters, got, c.want)
		}
		for _, ref := range c.want {
			if !got[ref] {
				t.Errorf("ListStatuses(%q) = %v, want %v", c.filters, got, c.want)
			}
		}
	}
	_, err := cs.ListStatuses(ctx, "ref==")
	checkClass(t, "ListStatuses with a malformed filter", err, errdefs.IsInvalidArgument, "InvalidArgument")
}

func testWriterForCommittedDigest(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(13, 777)
	desc := commit(ctx, t, cs, "committed-1", b, nil)
	_, err := cs.Writer(ctx, content.WithRef("committed-2"), content.WithDescriptor(desc))
	checkClass(t, "Writer for a committed digest", err, errdefs.IsAlreadyExists, "AlreadyExists")
	if err := content.WriteBlob(ctx, cs, "committed-3", errReader{t}, desc); err != nil {
		t.Fatalf("WriteBlob of a committed blob: %v", err)
	}
}

// errReader fails the test if it is read: nothing should need its bytes.
type errReader struct{ t *testing.T }

func (r errReader) Read([]byte) (int, error) {
	r.t.Errorf("source read although the blob is committed")
	return 0, io.EOF
}

// testCommitExistingContent writes bytes that are already a blob without
// saying so up front: the commit is AlreadyExists and the ingest is gone.
func testCommitExistingContent(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(14, 999)
	desc := commit(ctx, t, cs, "existing-1", b, nil)
	w := mustOpen(ctx, t, cs, "existing-2", ocispec.Descriptor{})
	mustWrite(t, w, b)
	err := w.Commit(ctx, desc.Size, desc.Digest)
	checkClass(t, "Commit of existing content", err, errdefs.IsAlreadyExists, "AlreadyExists")
	_, err = cs.Status(ctx, "existing-2")
	checkClass(t, "Status after an AlreadyExists commit", err, errdefs.IsNotFound, "NotFound")
	checkBlob(ctx, t, cs, desc, b)
}
