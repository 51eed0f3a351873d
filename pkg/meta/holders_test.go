package meta_test

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// TestHolders names what keeps each blob: a live lease (through the
// references it reaches), another image, a gc.root label; an expired
// lease, a missing blob and a blob nothing keeps are left out.
func TestHolders(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ctx := nsCtx(t, "ns")
	img := pushImage(t, ctx, db, "example.com/a:1", []byte("layer one"), []byte("layer two"))
	live, err := db.Leases().Create(ctx, meta.WithLeaseID("live"), meta.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Leases().AddResource(ctx, live, meta.Resource{Type: meta.ResourceContent, ID: img.manifest.Digest.String()}); err != nil {
		t.Fatal(err)
	}
	expired, err := db.Leases().Create(ctx, meta.WithLeaseID("expired"), meta.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Leases().AddResource(ctx, expired, meta.Resource{Type: meta.ResourceContent, ID: img.config.Digest.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Leases().SetExpiry(ctx, "expired", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	rooted := blob(t, ctx, db.ContentStore(), []byte("rooted"), map[string]string{meta.LabelGCRoot: "x"})
	loose := blob(t, ctx, db.ContentStore(), []byte("loose"), nil)

	asked := []digest.Digest{img.layers[0].Digest, img.config.Digest, rooted.Digest, loose.Digest, digest.FromString("missing")}
	hs, err := db.Holders(ctx, asked, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]digest.Digest{}
	for _, h := range hs {
		got[h.Kind+"/"+h.ID] = h.Content
	}
	want := map[string][]digest.Digest{
		"lease/live":            {img.config.Digest, img.layers[0].Digest},
		"image/example.com/a:1": {img.config.Digest, img.layers[0].Digest},
		"other/":                {rooted.Digest},
	}
	if len(got) != len(want) {
		t.Fatalf("holders %v, want %v", got, want)
	}
	for k, w := range want {
		if !sameDigests(got[k], w) {
			t.Errorf("%s holds %v, want %v", k, got[k], w)
		}
	}
}

func sameDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[digest.Digest]bool{}
	for _, d := range a {
		seen[d] = true
	}
	for _, d := range b {
		if !seen[d] {
			return false
		}
	}
	return true
}
