package storage

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

func newStore(t *testing.T) *MetaStore {
	t.Helper()
	ms, err := NewMetaStore(filepath.Join(t.TempDir(), "sub", "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}

func update(t *testing.T, ms *MetaStore, fn func(*Tx) error) error {
	t.Helper()
	return ms.Update(context.Background(), fn)
}

func create(t *testing.T, ms *MetaStore, kind snapshot.Kind, key, parent string) Snapshot {
	t.Helper()
	var s Snapshot
	if err := update(t, ms, func(tx *Tx) (err error) {
		s, err = tx.CreateSnapshot(kind, key, parent)
		return err
	}); err != nil {
		t.Fatalf("create %q over %q: %v", key, parent, err)
	}
	return s
}

func commit(t *testing.T, ms *MetaStore, key, name string, opts ...snapshot.Opt) {
	t.Helper()
	if err := update(t, ms, func(tx *Tx) error {
		_, err := tx.CommitActive(key, name, snapshot.Usage{Inodes: 3, Size: 4096}, opts...)
		return err
	}); err != nil {
		t.Fatalf("commit %q as %q: %v", key, name, err)
	}
}

func TestChainIDsAndIDsNeverReused(t *testing.T) {
	ms := newStore(t)
	a := create(t, ms, snapshot.KindActive, "a", "")
	commit(t, ms, "a", "A")
	b := create(t, ms, snapshot.KindActive, "b", "A")
	commit(t, ms, "b", "B")
	c := create(t, ms, snapshot.KindView, "c", "B")
	if !slices.Equal(c.ParentIDs, []string{b.ID, a.ID}) {
		t.Fatalf("parent IDs %v, want nearest first [%s %s]", c.ParentIDs, b.ID, a.ID)
	}
	var got Snapshot
	if err := ms.View(context.Background(), func(tx *Tx) (err error) {
		got, err = tx.GetSnapshot("B")
		return err
	}); err != nil || got.ID != b.ID || got.Kind != snapshot.KindCommitted || !slices.Equal(got.ParentIDs, []string{a.ID}) {
		t.Fatalf("get B: %+v, %v (id %s)", got, err, b.ID)
	}
	if err := update(t, ms, func(tx *Tx) error {
		id, kind, err := tx.Remove("c")
		if id != c.ID || kind != snapshot.KindView {
			t.Errorf("remove returned %s %v", id, kind)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d := create(t, ms, snapshot.KindActive, "c", "")
	if d.ID == c.ID {
		t.Fatalf("ID %s reused", d.ID)
	}
	var ids map[string]string
	if err := ms.View(context.Background(), func(tx *Tx) (err error) {
		ids, err = tx.IDMap()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || ids[a.ID] != "A" || ids[b.ID] != "B" || ids[d.ID] != "c" {
		t.Fatalf("IDMap %v", ids)
	}
}

func TestRebaseMovesTheChildLink(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshot.KindActive, "a", "")
	commit(t, ms, "a", "A")
	create(t, ms, snapshot.KindActive, "p", "")
	commit(t, ms, "p", "P")
	create(t, ms, snapshot.KindActive, "k", "A")
	commit(t, ms, "k", "K", snapshot.WithParent("P"))
	// A has no child left, P has K.
	if err := update(t, ms, func(tx *Tx) error { _, _, err := tx.Remove("A"); return err }); err != nil {
		t.Fatalf("remove of the old parent: %v", err)
	}
	err := update(t, ms, func(tx *Tx) error { _, _, err := tx.Remove("P"); return err })
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `"K"`) {
		t.Fatalf("remove of the new parent: %v", err)
	}
	var usage snapshot.Usage
	var info snapshot.Info
	if err := ms.View(context.Background(), func(tx *Tx) (err error) {
		_, info, usage, err = tx.GetInfo("K")
		return err
	}); err != nil || info.Parent != "P" || usage != (snapshot.Usage{Inodes: 3, Size: 4096}) {
		t.Fatalf("K: %+v %+v %v", info, usage, err)
	}
}

func TestValidation(t *testing.T) {
	ms := newStore(t)
	create(t, ms, snapshot.KindActive, "a", "")
	for _, c := range []struct {
		name string
		fn   func(*Tx) error
		is   func(error) bool
	}{
		{"empty key", func(tx *Tx) error { _, err := tx.CreateSnapshot(snapshot.KindActive, "", ""); return err }, errdefs.IsInvalidArgument},
		{"committed kind", func(tx *Tx) error { _, err := tx.CreateSnapshot(snapshot.KindCommitted, "x", ""); return err }, errdefs.IsInvalidArgument},
		{"WithParent on create", func(tx *Tx) error {
			_, err := tx.CreateSnapshot(snapshot.KindActive, "x", "", snapshot.WithParent("a"))
			return err
		}, errdefs.IsInvalidArgument},
		{"huge label", func(tx *Tx) error {
			_, err := tx.CreateSnapshot(snapshot.KindActive, "x", "", snapshot.WithLabels(map[string]string{"k": strings.Repeat("v", maxLabelSize)}))
			return err
		}, errdefs.IsInvalidArgument},
		{"active parent", func(tx *Tx) error { _, err := tx.CreateSnapshot(snapshot.KindActive, "x", "a"); return err }, errdefs.IsFailedPrecondition},
		{"empty name", func(tx *Tx) error { _, err := tx.CommitActive("a", "", snapshot.Usage{}); return err }, errdefs.IsInvalidArgument},
		{"update of a missing key", func(tx *Tx) error { _, err := tx.UpdateInfo(snapshot.Info{Name: "zz"}); return err }, errdefs.IsNotFound},
	} {
		if err := update(t, ms, c.fn); !c.is(err) {
			t.Errorf("%s: wrong class: %v", c.name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ms.View(ctx, func(*Tx) error { return nil }); !errdefs.IsCanceled(err) {
		t.Errorf("cancelled view: %v", err)
	}
}

func TestReadOnlyOnEmptyStore(t *testing.T) {
	ms := newStore(t)
	err := ms.View(context.Background(), func(tx *Tx) error {
		if _, err := tx.GetSnapshot("x"); !errdefs.IsNotFound(err) {
			t.Errorf("get: %v", err)
		}
		if ids, err := tx.IDMap(); err != nil || len(ids) != 0 {
			t.Errorf("IDMap: %v %v", ids, err)
		}
		return tx.WalkInfo(func(snapshot.Info) error { t.Error("walk found something"); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
}
