package meta_test

import (
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func TestContainerCRUD(t *testing.T) {
	rec := &recorder{}
	db := newEnv(t, meta.WithPublisher(rec)).DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	sn := db.Snapshotter("native")
	if _, err := sn.Prepare(ctx, "rootfs-c1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: "s1", Runtime: meta.Runtime{Name: "runc"}}); err != nil {
		t.Fatal(err)
	}
	cs := db.Containers()
	c := meta.Container{
		ID: "c1", Image: "r/a:1", Runtime: meta.Runtime{Name: "runc", Options: []byte("opts")},
		Spec: []byte(`{"ociVersion":"1.2.0"}`), Snapshotter: "native", SnapshotKey: "rootfs-c1",
		SandboxID: "s1", Labels: map[string]string{"a": "1"}, Extensions: map[string][]byte{"x": []byte("1")},
	}
	created, err := cs.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Create(ctx, c); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	got, err := cs.Get(ctx, "c1")
	if err != nil || got.Image != c.Image || string(got.Spec) != string(c.Spec) || got.Runtime.Name != "runc" ||
		string(got.Runtime.Options) != "opts" || got.SnapshotKey != "rootfs-c1" || got.SandboxID != "s1" ||
		string(got.Extensions["x"]) != "1" || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("get: %+v, %v", got, err)
	}

	upd, err := cs.Update(ctx, meta.Container{ID: "c1", Image: "r/b:1", Labels: map[string]string{"b": "2"},
		Extensions: map[string][]byte{"y": []byte("2")}}, "image", "labels.b", "extensions.y", "extensions.x")
	if err != nil {
		t.Fatal(err)
	}
	if upd.Image != "r/b:1" || upd.Labels["a"] != "1" || upd.Labels["b"] != "2" || string(upd.Extensions["y"]) != "2" ||
		upd.Extensions["x"] != nil || string(upd.Spec) != string(c.Spec) {
		t.Fatalf("masked update: %+v", upd)
	}
	if _, err := cs.Update(ctx, meta.Container{ID: "c1", SnapshotKey: "missing", Snapshotter: "native"}, "snapshotkey"); !errdefs.IsNotFound(err) {
		t.Fatalf("update to a missing snapshot: %v", err)
	}
	if _, err := cs.Update(ctx, meta.Container{ID: "c1"}, "id"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown field path: %v", err)
	}
	if _, err := cs.Update(ctx, meta.Container{ID: "nope"}, "image"); !errdefs.IsNotFound(err) {
		t.Fatalf("update of a missing container: %v", err)
	}
	if err := cs.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Delete(ctx, "c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	rec.has(t, "ns /containers/create", "ns /containers/update", "ns /containers/delete", "ns /snapshot/prepare")
}

func TestContainerValidation(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	bad := map[string]meta.Container{
		`"c/1"`:                       {ID: "c/1", Runtime: meta.Runtime{Name: "runc"}},
		"runtime name":                {ID: "c1"},
		"needs a snapshotter":         {ID: "c1", Runtime: meta.Runtime{Name: "runc"}, SnapshotKey: "k"},
		`snapshotter "zfs"`:           {ID: "c1", Runtime: meta.Runtime{Name: "runc"}, SnapshotKey: "k", Snapshotter: "zfs"},
		`snapshot "k" of "native"`:    {ID: "c1", Runtime: meta.Runtime{Name: "runc"}, SnapshotKey: "k", Snapshotter: "native"},
		"label key must not be empty": {ID: "c1", Runtime: meta.Runtime{Name: "runc"}, Labels: map[string]string{"": "x"}},
	}
	for want, c := range bad {
		_, err := db.Containers().Create(ctx, c)
		if err == nil || !strings.Contains(err.Error(), want) || !(errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err)) {
			t.Errorf("%+v: want an error saying %q, got %v", c, want, err)
		}
	}
}

func TestContainerListFilters(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	for _, c := range []meta.Container{
		{ID: "c1", Image: "r/a:1", Runtime: meta.Runtime{Name: "runc"}, Labels: map[string]string{"pod": "p1"}},
		{ID: "c2", Image: "r/a:1", Runtime: meta.Runtime{Name: "crun"}, Labels: map[string]string{"pod": "p2"}},
		{ID: "c3", Image: "r/b:1", Runtime: meta.Runtime{Name: "runc"}},
	} {
		if _, err := db.Containers().Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]string{
		"":                   "c1 c2 c3",
		"id==c2":             "c2",
		"image==r/a:1":       "c1 c2",
		"runtime.name==runc": "c1 c3",
		"labels.pod==p1":     "c1",
		"labels.pod":         "c1 c2",
	}
	for f, want := range cases {
		var fs []string
		if f != "" {
			fs = []string{f}
		}
		list, err := db.Containers().List(ctx, fs...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if got := strings.Join(ids, " "); got != want {
			t.Errorf("%q: got %q, want %q", f, got, want)
		}
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := db.Containers().Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSandboxCRUD(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	sbs := db.Sandboxes()
	sb := meta.Sandbox{ID: "s1", Runtime: meta.Runtime{Name: "runc"}, Spec: []byte("{}"), Labels: map[string]string{"pod": "p"}}
	if _, err := sbs.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := sbs.Create(ctx, sb); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := sbs.Create(ctx, meta.Sandbox{ID: "s2"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no runtime: %v", err)
	}
	if _, err := sbs.Create(ctx, meta.Sandbox{ID: "s2", Runtime: meta.Runtime{Name: "kata"}}); err != nil {
		t.Fatal(err)
	}
	upd, err := sbs.Update(ctx, meta.Sandbox{ID: "s1", Spec: []byte(`{"a":1}`), Extensions: map[string][]byte{"status": []byte("ready")}}, "spec", "extensions.status")
	if err != nil || string(upd.Spec) != `{"a":1}` || string(upd.Extensions["status"]) != "ready" || upd.Labels["pod"] != "p" {
		t.Fatalf("update: %+v, %v", upd, err)
	}
	if _, err := sbs.Update(ctx, meta.Sandbox{ID: "s1"}, "image"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown field path: %v", err)
	}
	list, err := sbs.List(ctx, "runtime.name==kata")
	if err != nil || len(list) != 1 || list[0].ID != "s2" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	list, err = sbs.List(ctx, "labels.pod==p")
	if err != nil || len(list) != 1 || list[0].ID != "s1" {
		t.Fatalf("list by label: %+v, %v", list, err)
	}
	got, err := sbs.Get(ctx, "s1")
	if err != nil || string(got.Extensions["status"]) != "ready" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if err := sbs.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sbs.Get(ctx, "s1"); !errdefs.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := sbs.Delete(ctx, "s1"); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}
