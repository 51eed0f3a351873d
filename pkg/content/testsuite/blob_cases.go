package testsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testUpdateLabels(ctx context.Context, t *testing.T, cs content.Store) {
	desc := commit(ctx, t, cs, "labels", randomBytes(30, 500), map[string]string{"a": "1", "b": "2"})
	checkLabels := func(what string, info content.Info, want map[string]string) {
		t.Helper()
		if !maps.Equal(info.Labels, want) && (len(info.Labels) != 0 || len(want) != 0) {
			t.Fatalf("%s: labels %v, want %v", what, info.Labels, want)
		}
		again, err := cs.Info(ctx, desc.Digest)
		if err != nil {
			t.Fatalf("Info: %v", err)
		}
		if !maps.Equal(again.Labels, want) && (len(again.Labels) != 0 || len(want) != 0) {
			t.Fatalf("%s: Info labels %v, want %v", what, again.Labels, want)
		}
	}
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	checkLabels("commit WithLabels", info, map[string]string{"a": "1", "b": "2"})

	update := func(labels map[string]string, paths ...string) content.Info {
		t.Helper()
		info, err := cs.Update(ctx, content.Info{Digest: desc.Digest, Labels: labels}, paths...)
		if err != nil {
			t.Fatalf("Update(%v, %q): %v", labels, paths, err)
		}
		return info
	}
	// One path sets one key and leaves the others alone, even those given.
	info = update(map[string]string{"c": "3", "a": "ignored"}, "labels.c")
	checkLabels("labels.c", info, map[string]string{"a": "1", "b": "2", "c": "3"})
	// A path whose key is absent from info removes it.
	info = update(nil, "labels.a")
	checkLabels("remove labels.a", info, map[string]string{"b": "2", "c": "3"})
	// "labels" and no path at all both replace the whole set.
	info = update(map[string]string{"x": "y"}, "labels")
	checkLabels("labels", info, map[string]string{"x": "y"})
	info = update(map[string]string{"p": "q", "r": "s"})
	checkLabels("no field path", info, map[string]string{"p": "q", "r": "s"})
	if info.Size != desc.Size || info.Digest != desc.Digest {
		t.Fatalf("Update returned %s/%d, want %s/%d", info.Digest, info.Size, desc.Digest, desc.Size)
	}

	_, err = cs.Update(ctx, content.Info{Digest: desc.Digest, Size: 1}, "size")
	checkClass(t, "Update of field path size", err, errdefs.IsInvalidArgument, "InvalidArgument")
	_, err = cs.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"z": "z"}}, "labels.z", "bogus")
	checkClass(t, "Update with one bad field path", err, errdefs.IsInvalidArgument, "InvalidArgument")
	info, _ = cs.Info(ctx, desc.Digest)
	checkLabels("after a rejected update", info, map[string]string{"p": "q", "r": "s"})
	_, err = cs.Update(ctx, content.Info{Digest: digest.SHA256.FromString("missing"), Labels: map[string]string{"a": "b"}})
	checkClass(t, "Update of a missing blob", err, errdefs.IsNotFound, "NotFound")
}

func testWalkFilters(ctx context.Context, t *testing.T, cs content.Store) {
	layer1 := commit(ctx, t, cs, "walk-1", randomBytes(40, 1000), map[string]string{"kind": "layer", "n": "1"})
	layer2 := commit(ctx, t, cs, "walk-2", randomBytes(41, 2000), map[string]string{"kind": "layer", "n": "2"})
	config := commit(ctx, t, cs, "walk-3", randomBytes(42, 5), map[string]string{"kind": "config"})
	plain := commit(ctx, t, cs, "walk-4", randomBytes(43, 7), nil)
	// An ingest in progress is not a blob.
	inProgress := randomBytes(44, 100)
	w := mustOpen(ctx, t, cs, "walk-5", descOf(inProgress))
	mustWrite(t, w, inProgress)

	for _, c := range []struct {
		filters []string
		want    []ocispec.Descriptor
	}{
		{nil, []ocispec.Descriptor{layer1, layer2, config, plain}},
		{[]string{"labels.kind==layer"}, []ocispec.Descriptor{layer1, layer2}},
		{[]string{"labels.kind"}, []ocispec.Descriptor{layer1, layer2, config}},
		{[]string{"labels.kind!=layer"}, []ocispec.Descriptor{config, plain}},
		{[]string{"digest==" + layer2.Digest.String()}, []ocispec.Descriptor{layer2}},
		{[]string{"size==5"}, []ocispec.Descriptor{config}},
		{[]string{"labels.kind==layer,labels.n==2"}, []ocispec.Descriptor{layer2}},
		{[]string{"labels.n==1", "size==7"}, []ocispec.Descriptor{layer1, plain}},
		{[]string{`labels.kind~="^conf"`}, []ocispec.Descriptor{config}},
	} {
		got := map[digest.Digest]content.Info{}
		err := cs.Walk(ctx, func(info content.Info) error {
			if _, dup := got[info.Digest]; dup {
				t.Errorf("Walk(%q) visits %s twice", c.filters, info.Digest)
			}
			got[info.Digest] = info
			return nil
		}, c.filters...)
		if err != nil {
			t.Fatalf("Walk(%q): %v", c.filters, err)
		}
		if len(got) != len(c.want) {
			t.Errorf("Walk(%q) visits %d blobs, want %d", c.filters, len(got), len(c.want))
		}
		for _, d := range c.want {
			if info, ok := got[d.Digest]; !ok || info.Size != d.Size {
				t.Errorf("Walk(%q): %s missing or with a wrong size (%+v)", c.filters, d.Digest, info)
			}
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := cs.Walk(ctx, func(content.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with a failing fn: %v after %d calls, want stop after 1", err, calls)
	}
	err = cs.Walk(ctx, func(content.Info) error { return nil }, "labels.kind==")
	checkClass(t, "Walk with a malformed filter", err, errdefs.IsInvalidArgument, "InvalidArgument")
}

func testDelete(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(50, 1234)
	desc := commit(ctx, t, cs, "delete", b, map[string]string{"keep": "no"})
	if err := cs.Delete(ctx, desc.Digest); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkNotCommitted(ctx, t, cs, desc.Digest)
	_, err := cs.ReaderAt(ctx, desc)
	checkClass(t, "ReaderAt after Delete", err, errdefs.IsNotFound, "NotFound")
	err = cs.Delete(ctx, desc.Digest)
	checkClass(t, "second Delete", err, errdefs.IsNotFound, "NotFound")
	err = cs.Walk(ctx, func(info content.Info) error {
		if info.Digest == desc.Digest {
			t.Errorf("Walk visits deleted blob %s", desc.Digest)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	// Committed again, the blob does not inherit the deleted one's labels.
	desc = commit(ctx, t, cs, "delete", b, nil)
	if info, err := cs.Info(ctx, desc.Digest); err != nil || len(info.Labels) != 0 {
		t.Fatalf("recommitted blob: %+v, %v; want no labels", info, err)
	}
}

func testReaderAtMissing(ctx context.Context, t *testing.T, cs content.Store) {
	desc := descOf([]byte("never written"))
	_, err := cs.ReaderAt(ctx, desc)
	checkClass(t, "ReaderAt of a missing blob", err, errdefs.IsNotFound, "NotFound")
	_, err = content.ReadBlob(ctx, cs, desc)
	checkClass(t, "ReadBlob of a missing blob", err, errdefs.IsNotFound, "NotFound")
	_, err = cs.Info(ctx, desc.Digest)
	checkClass(t, "Info of a missing blob", err, errdefs.IsNotFound, "NotFound")
}

// testLargeBlobOddChunks writes several MiB in chunk sizes that straddle
// every buffer boundary an implementation might have, then reads it back
// at odd offsets.
func testLargeBlobOddChunks(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(60, 6<<20+7)
	desc := descOf(b)
	w := mustOpen(ctx, t, cs, "large", desc)
	chunks := []int{1, 7, 4093, 65537, 1<<20 + 3, 31, 32<<10 - 1}
	for off, i := 0, 0; off < len(b); i++ {
		n := min(chunks[i%len(chunks)], len(b)-off)
		mustWrite(t, w, b[off:off+n])
		off += n
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(ctx, t, cs, desc, b)

	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatalf("ReaderAt: %v", err)
	}
	defer ra.Close()
	for _, off := range []int64{0, 1, 4093, 1<<20 - 1, 3<<20 + 11, desc.Size - 5000} {
		buf := make([]byte, 5000)
		n, err := ra.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == desc.Size) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
		if !bytes.Equal(buf[:n], b[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d): bytes differ", off)
		}
	}
	// Past the end is EOF, not garbage.
	if n, err := ra.ReadAt(make([]byte, 10), desc.Size); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	all, err := io.ReadAll(content.NewReader(ra))
	if err != nil || !bytes.Equal(all, b) {
		t.Fatalf("NewReader: %d bytes, %v", len(all), err)
	}
}

// testConcurrentWriteBlob runs the pull pattern: several goroutines write
// the same blob through the same ref. OpenWriter queues them on the ref
// lock; every one succeeds and the blob is committed once.
func testConcurrentWriteBlob(ctx context.Context, t *testing.T, cs content.Store) {
	b := randomBytes(70, 1<<20+17)
	desc := descOf(b)
	ref := "fetch-" + desc.Digest.String()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			errs[i] = content.WriteBlob(ctx, cs, ref, bytes.NewReader(b), desc,
				content.WithLabels(map[string]string{"writer": fmt.Sprint(i)}))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("WriteBlob %d: %v", i, err)
		}
	}
	checkBlob(ctx, t, cs, desc, b)
	_, err := cs.Status(ctx, ref)
	checkClass(t, "Status after the blob is committed", err, errdefs.IsNotFound, "NotFound")
}
