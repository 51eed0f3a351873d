package meta_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func target(s string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(s), Size: int64(len(s))}
}

// imageBlob commits s so that an image may target it.
func imageBlob(t *testing.T, ctx context.Context, db *meta.DB, s string) ocispec.Descriptor {
	d := blob(t, ctx, db.ContentStore(), []byte(s), nil)
	d.MediaType = ocispec.MediaTypeImageManifest
	return d
}

func TestImageCRUD(t *testing.T) {
	rec := &recorder{}
	db := newEnv(t, meta.WithPublisher(rec)).DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	images := db.Images()
	t1, t2 := imageBlob(t, ctx, db, "m1"), imageBlob(t, ctx, db, "m2")

	created, err := images.Create(ctx, meta.Image{Name: "r/a:1", Target: t1, Labels: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || !created.CreatedAt.Equal(created.UpdatedAt) {
		t.Errorf("times of a new image: %v %v", created.CreatedAt, created.UpdatedAt)
	}
	if _, err := images.Create(ctx, meta.Image{Name: "r/a:1", Target: t1}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	got, err := images.Get(ctx, "r/a:1")
	if err != nil || got.Target.Digest != t1.Digest || got.Target.Size != t1.Size || got.Labels["b"] != "2" {
		t.Fatalf("get: %+v, %v", got, err)
	}

	// Field masks: one label set, one removed, the target untouched.
	upd, err := images.Update(ctx, meta.Image{Name: "r/a:1", Target: t2, Labels: map[string]string{"a": "10"}}, "labels.a", "labels.b")
	if err != nil {
		t.Fatal(err)
	}
	if upd.Labels["a"] != "10" || len(upd.Labels) != 1 || upd.Target.Digest != t1.Digest {
		t.Fatalf("labels.<k> update: %+v", upd)
	}
	if !upd.UpdatedAt.After(upd.CreatedAt) || !upd.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("times after update: created %v updated %v", upd.CreatedAt, upd.UpdatedAt)
	}
	upd, err = images.Update(ctx, meta.Image{Name: "r/a:1", Target: t2, Labels: map[string]string{"z": "1"}}, "target")
	if err != nil || upd.Target.Digest != t2.Digest || upd.Labels["a"] != "10" {
		t.Fatalf("target update: %+v, %v", upd, err)
	}
	upd, err = images.Update(ctx, meta.Image{Name: "r/a:1", Labels: map[string]string{"z": "1"}}, "labels")
	if err != nil || len(upd.Labels) != 1 || upd.Labels["z"] != "1" {
		t.Fatalf("labels update: %+v, %v", upd, err)
	}
	if _, err := images.Update(ctx, meta.Image{Name: "r/a:1"}, "name"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown field path: %v", err)
	}
	if _, err := images.Update(ctx, meta.Image{Name: "r/none"}, "labels"); !errdefs.IsNotFound(err) {
		t.Fatalf("update of a missing image: %v", err)
	}

	if err := images.Delete(ctx, "r/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := images.Delete(ctx, "r/a:1"); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := images.Get(ctx, "r/a:1"); !errdefs.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	rec.has(t, "ns /images/create", "ns /images/update", "ns /images/delete", "ns /content/create")
}

func TestImageValidation(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	bad := map[string]meta.Image{
		"image name must not be empty": {Name: "", Target: target("x")},
		`"a\nb"`:                       {Name: "a\nb", Target: target("x")},
		`target digest "sha256:nope"`:  {Name: "a", Target: ocispec.Descriptor{MediaType: "m", Digest: "sha256:nope"}},
		"media type must not be empty": {Name: "a", Target: ocispec.Descriptor{Digest: digest.FromString("x")}},
		"size -1 is negative":          {Name: "a", Target: ocispec.Descriptor{MediaType: "m", Digest: digest.FromString("x"), Size: -1}},
	}
	for want, img := range bad {
		_, err := db.Images().Create(ctx, img)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want InvalidArgument saying %q, got %v", img.Name, want, err)
		}
	}
	if _, err := db.Images().Get(context.Background(), "a"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no namespace: %v", err)
	}
}

func TestImageListFilters(t *testing.T) {
	db := newEnv(t).DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	m1, m2 := imageBlob(t, ctx, db, "m1"), imageBlob(t, ctx, db, "m2")
	idx := imageBlob(t, ctx, db, "index")
	idx.MediaType = ocispec.MediaTypeImageIndex
	for _, img := range []meta.Image{
		{Name: "r/a:1", Target: m1, Labels: map[string]string{"team": "x", "tier": "web"}},
		{Name: "r/a:2", Target: m2, Labels: map[string]string{"team": "y"}},
		{Name: "r/b:1", Target: idx},
	} {
		if _, err := db.Images().Create(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		filters []string
		want    string
	}{
		{nil, "r/a:1 r/a:2 r/b:1"},
		{[]string{"name==r/a:2"}, "r/a:2"},
		{[]string{`name~=^r/a`}, "r/a:1 r/a:2"},
		{[]string{"target.digest==" + m1.Digest.String()}, "r/a:1"},
		{[]string{"target.mediatype==" + ocispec.MediaTypeImageIndex}, "r/b:1"},
		{[]string{"labels.team==y"}, "r/a:2"},
		{[]string{"labels.tier"}, "r/a:1"},
		{[]string{"labels.team==x", "name==r/b:1"}, "r/a:1 r/b:1"},
		{[]string{"labels.team==x,name==r/a:2"}, ""},
	}
	for _, c := range cases {
		list, err := db.Images().List(ctx, c.filters...)
		if err != nil {
			t.Fatalf("%q: %v", c.filters, err)
		}
		var names []string
		for _, img := range list {
			names = append(names, img.Name)
		}
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.filters, got, c.want)
		}
	}
	if _, err := db.Images().List(ctx, "name=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad filter: %v", err)
	}
}

func TestImageTargetMustExist(t *testing.T) {
	db := newEnv(t).DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	_, err := db.Images().Create(ctx, meta.Image{Name: "r/a:1", Target: target("absent")})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "target content") {
		t.Fatalf("image over missing content: %v", err)
	}
	m := imageBlob(t, ctx, db, "m")
	if _, err := db.Images().Create(ctx, meta.Image{Name: "r/a:1", Target: m}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Update(ctx, meta.Image{Name: "r/a:1", Target: target("absent")}, "target"); !errdefs.IsNotFound(err) {
		t.Fatalf("update to missing content: %v", err)
	}
	if err := db.Images().Delete(ctx, "r/a:1"); err != nil {
		t.Fatal(err)
	}
}

// The CRI names an image by its config digest: images are found and
// removed by it, through an index written with the records.
func TestImagesByConfig(t *testing.T) {
	db := newEnv(t).DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	a := pushImage(t, ctx, db, "r/a:1", []byte("layer"))
	if _, err := db.Images().Create(ctx, meta.Image{Name: "r/a:latest", Target: a.manifest, ConfigDigest: a.config.Digest}); err != nil {
		t.Fatal(err)
	}
	b := pushImage(t, ctx, db, "r/b:1", []byte("other layer"))
	names := func(imgs []meta.Image) string {
		var n []string
		for _, img := range imgs {
			n = append(n, img.Name)
		}
		return strings.Join(n, " ")
	}
	list, err := db.Images().ListByConfig(ctx, a.config.Digest)
	if err != nil || names(list) != "r/a:1 r/a:latest" || list[0].ConfigDigest != a.config.Digest {
		t.Fatalf("by config: %q, %v", names(list), err)
	}
	if list, err := db.Images().List(ctx, "config.digest=="+b.config.Digest.String()); err != nil || names(list) != "r/b:1" {
		t.Fatalf("filter by config: %q, %v", names(list), err)
	}
	// Moving a name to another config moves it in the index.
	if _, err := db.Images().Update(ctx, meta.Image{Name: "r/a:latest", Target: b.manifest, ConfigDigest: b.config.Digest}, "target", "config"); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.Images().ListByConfig(ctx, b.config.Digest); names(list) != "r/a:latest r/b:1" {
		t.Fatalf("after the move: %q", names(list))
	}
	if _, err := db.Images().Create(ctx, meta.Image{Name: "r/bad", Target: a.manifest, ConfigDigest: "sha256:nope"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad config digest: %v", err)
	}
	removed, err := db.Images().DeleteByConfig(ctx, b.config.Digest)
	if err != nil || strings.Join(removed, " ") != "r/a:latest r/b:1" {
		t.Fatalf("delete by config: %q, %v", removed, err)
	}
	if _, err := db.Images().DeleteByConfig(ctx, b.config.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete by config: %v", err)
	}
	if list, _ := db.Images().List(ctx); names(list) != "r/a:1" {
		t.Fatalf("left: %q", names(list))
	}
	if err := db.Images().Delete(ctx, "r/a:1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.Images().ListByConfig(ctx, a.config.Digest); len(list) != 0 {
		t.Fatalf("index after the last delete: %q", names(list))
	}
}
