// Package testsuite is the one set of tests every content.Store runs: the
// local backend, pkg/meta's namespaced view and the gRPC client. It tests
// only through the content.Store interface and the content helpers, so what
// passes here is the contract, not an implementation detail.
//
// This package imports pkg/content, pkg/errdefs and the test libraries only.
package testsuite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Run runs the whole suite as subtests of t named name/<case>. newStore
// returns a fresh, empty store for one case and the context to call it with
// (carrying whatever the store needs: a namespace for the meta view); it
// registers its cleanup on t.
func Run(t *testing.T, name string, newStore func(ctx context.Context, t *testing.T) (context.Context, content.Store)) {
	cases := []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, cs content.Store)
	}{
		{"WriteCommitReadBack", testWriteCommitReadBack},
		{"ExpectedUpFront", testExpectedUpFront},
		{"EmptyBlob", testEmptyBlob},
		{"RefRequired", testRefRequired},
		{"CommitWrongSize", testCommitWrongSize},
		{"CommitWrongDigest", testCommitWrongDigest},
		{"CommitAgainstWriterExpectation", testCommitAgainstWriterExpectation},
		{"SecondWriterUnavailable", testSecondWriterUnavailable},
		{"ResumeAfterClose", testResumeAfterClose},
		{"ResumeWithCopy", testResumeWithCopy},
		{"TruncateRestarts", testTruncateRestarts},
		{"Abort", testAbort},
		{"Status", testStatus},
		{"ListStatusesFilters", testListStatusesFilters},
		{"WriterForCommittedDigest", testWriterForCommittedDigest},
		{"CommitExistingContent", testCommitExistingContent},
		{"UpdateLabels", testUpdateLabels},
		{"WalkFilters", testWalkFilters},
		{"Delete", testDelete},
		{"ReaderAtMissing", testReaderAtMissing},
		{"LargeBlobOddChunks", testLargeBlobOddChunks},
		{"ConcurrentWriteBlob", testConcurrentWriteBlob},
	}
	for _, c := range cases {
		t.Run(name+"/"+c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ctx, cs := newStore(ctx, t)
			c.fn(ctx, t, cs)
		})
	}
}

// randomBytes returns n deterministic pseudo-random bytes for seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	r := rand.NewChaCha8(key)
	b := make([]byte, n)
	r.Read(b)
	return b
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.SHA256.FromBytes(b),
		Size:      int64(len(b)),
	}
}

// commit writes b under ref with no expectations up front and commits it
// with the given labels.
func commit(ctx context.Context, t *testing.T, cs content.Store, ref string, b []byte, labels map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := descOf(b)
	w, err := cs.Writer(ctx, content.WithRef(ref))
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	defer w.Close()
	mustWrite(t, w, b)
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest, opts...); err != nil {
		t.Fatalf("Commit(%q): %v", ref, err)
	}
	return desc
}

func mustWrite(t *testing.T, w content.Writer, b []byte) {
	t.Helper()
	n, err := w.Write(b)
	if err != nil || n != len(b) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(b), n, err)
	}
}

func mustOpen(ctx context.Context, t *testing.T, cs content.Store, ref string, desc ocispec.Descriptor) content.Writer {
	t.Helper()
	w, err := cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustStatus(t *testing.T, w content.Writer) content.Status {
	t.Helper()
	st, err := w.Status()
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// checkBlob checks that desc is committed with exactly want as its bytes.
func checkBlob(ctx context.Context, t *testing.T, cs content.Store, desc ocispec.Descriptor, want []byte) {
	t.Helper()
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatalf("Info(%s): %v", desc.Digest, err)
	}
	if info.Digest != desc.Digest || info.Size != int64(len(want)) {
		t.Fatalf("Info = %s/%d, want %s/%d", info.Digest, info.Size, desc.Digest, len(want))
	}
	got, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		t.Fatalf("ReadBlob(%s): %v", desc.Digest, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadBlob(%s): %d bytes differ from the %d written (sha256 %x)", desc.Digest, len(got), len(want), sha256.Sum256(got))
	}
}

// checkClass fails unless err is of the class is reports.
func checkClass(t *testing.T, what string, err error, is func(error) bool, class string) {
	t.Helper()
	if err == nil || !is(err) {
		t.Fatalf("%s: got %v, want a %s error", what, err, class)
	}
}

func checkNotCommitted(ctx context.Context, t *testing.T, cs content.Store, dgst digest.Digest) {
	t.Helper()
	if _, err := cs.Info(ctx, dgst); err == nil {
		t.Fatalf("blob %s is committed, must not be", dgst)
	} else if !errdefs.IsNotFound(err) {
		t.Fatalf("Info(%s): %v, want NotFound", dgst, err)
	}
}
