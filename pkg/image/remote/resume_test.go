package remote_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

// TestResumeIntoContentStore resumes half-written ingests of the local
// content store the way a pull does: FetchFrom at the ingest's offset, or
// Fetch from 0 and content.Copy seeking to the offset.
func TestResumeIntoContentStore(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	b, layer := bigLayer(t)
	imagetest.Push(t, host, "test/big", "v1", b)
	p := newProxy(t, host, "/v2", nil, nil)
	r := remote.NewResolver(remote.Options{Hosts: only(plainEndpoint(p.host(), "/v2"))})
	f, err := r.Fetcher(ctx, host+"/test/big")
	if err != nil {
		t.Fatal(err)
	}
	const half = 100000
	resumed := fmt.Sprintf("bytes=%d-", half)

	for _, tc := range []struct {
		name       string
		fromOffset bool
		wantRanges []string
	}{
		{"FetchFrom the ingest offset", true, []string{resumed}},
		{"Fetch, then Copy seeks", false, []string{"", resumed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := local.NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ref := "fetch-" + layer.Desc.Digest.String()
			w, err := store.Writer(ctx, content.WithRef(ref), content.WithDescriptor(layer.Desc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(layer.Blob[:half]); err != nil {
				t.Fatal(err)
			}
			w.Close()

			before, _ := p.seen()
			w, err = content.OpenWriter(ctx, store, content.WithRef(ref), content.WithDescriptor(layer.Desc))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			st, err := w.Status()
			if err != nil || st.Offset != half {
				t.Fatalf("resumed ingest at %d, %v; want %d", st.Offset, err, half)
			}
			var from int64
			if tc.fromOffset {
				from = st.Offset
			}
			rc, err := f.FetchFrom(ctx, layer.Desc, from)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if err := content.Copy(ctx, w, rc, layer.Desc.Size, layer.Desc.Digest); err != nil {
				t.Fatalf("copy into the resumed ingest: %v", err)
			}
			if info, err := store.Info(ctx, layer.Desc.Digest); err != nil || info.Size != layer.Desc.Size {
				t.Fatalf("committed blob = %+v, %v", info, err)
			}
			after, _ := p.seen()
			if got := after[len(before):]; !slices.Equal(got, tc.wantRanges) {
				t.Errorf("ranges asked: %q, want %q", got, tc.wantRanges)
			}
		})
	}
}
