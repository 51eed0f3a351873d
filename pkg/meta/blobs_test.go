package meta

import (
	"maps"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/opencontainers/go-digest"
)

func TestBlobRecordRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123).UTC()
	in := content.Info{
		Digest: digest.FromString("x"), Size: 1 << 40, CreatedAt: now, UpdatedAt: now.Add(time.Second),
		Labels: map[string]string{"b": "2", LabelGCRefContent + ".l.0": "sha256:aa", "a": "", LabelGCRoot: "1"},
	}
	v := encodeBlob(in)
	out, ok := decodeBlob(in.Digest, v)
	if !ok || out.Size != in.Size || !out.CreatedAt.Equal(in.CreatedAt) || !out.UpdatedAt.Equal(in.UpdatedAt) || !maps.Equal(out.Labels, in.Labels) {
		t.Fatalf("round trip: %+v, %v; want %+v", out, ok, in)
	}
	var gcLabels []string
	blobGCLabels(v, func(k, val []byte) { gcLabels = append(gcLabels, string(k)+"="+string(val)) })
	if len(gcLabels) != 2 || gcLabels[0] != LabelGCRefContent+".l.0=sha256:aa" || gcLabels[1] != LabelGCRoot+"=1" {
		t.Fatalf("GC labels %q", gcLabels)
	}
	plain := encodeBlob(content.Info{Digest: in.Digest, Labels: map[string]string{"a": "1"}})
	blobGCLabels(plain, func(k, _ []byte) { t.Fatalf("GC label %q in a record without any", k) })
	if info, ok := decodeBlob(in.Digest, plain); !ok || !info.CreatedAt.IsZero() {
		t.Fatalf("zero times: %+v, %v", info, ok)
	}
	for _, bad := range [][]byte{nil, {9}, {blobFormat, 0}, v[:len(v)-1], append(append([]byte{}, v...), 0)} {
		if _, ok := decodeBlob(in.Digest, bad); ok {
			t.Errorf("corrupt record %x decoded", bad)
		}
	}
}
