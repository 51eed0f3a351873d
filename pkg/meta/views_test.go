package meta_test

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// A View reads what List reads, in place, and reads nothing when given
// the generation it returned while nothing was written since.
func TestViewReadsWhatListReads(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: "s1", Runtime: meta.Runtime{Name: "runc"}, Labels: map[string]string{"a": "1"},
		Extensions: map[string][]byte{"x": []byte("1")}, Status: meta.Status{State: meta.StateRunning, Pid: 7, StartedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "c1", SandboxID: "s1", Runtime: meta.Runtime{Name: "runc"}}); err != nil {
		t.Fatal(err)
	}
	check := func(since uint64) (gen uint64, n int) {
		t.Helper()
		want, err := db.Sandboxes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gen, err = db.Sandboxes().View(ctx, since, func(v meta.RecordView) error {
			w := want[n]
			n++
			st, err := meta.DecodeStatus(v.RawStatus())
			if string(v.ID()) != w.ID || err != nil || st != w.Status || !meta.DecodeTime(v.RawCreatedAt()).Equal(w.CreatedAt) ||
				!maps.Equal(v.Labels(), w.Labels) || !v.LabelsEqual(w.Labels) || !bytes.Equal(v.Extension("x"), w.Extensions["x"]) ||
				v.Extension("none") != nil || len(v.SandboxID()) != 0 {
				t.Errorf("view of %s differs from its list: %+v", v.ID(), w)
			}
			if v.LabelsEqual(map[string]string{"a": "2"}) || v.LabelsEqual(map[string]string{"a": "1", "b": "1"}) || v.LabelsEqual(nil) {
				t.Errorf("labels of %s equal to others", v.ID())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return gen, n
	}
	gen, n := check(0)
	if n != 1 || gen == 0 {
		t.Fatalf("first view: %d records, generation %d", n, gen)
	}
	if again, n := check(gen); again != gen || n != 0 {
		t.Errorf("view since %d with no write: generation %d, %d records read", gen, again, n)
	}
	if err := db.Sandboxes().SetStatus(ctx, "s1", meta.Status{State: meta.StateExited}); err != nil {
		t.Fatal(err)
	}
	if after, n := check(gen); after <= gen || n != 1 {
		t.Errorf("view since %d after a write: generation %d, %d records read", gen, after, n)
	}
	var sid string
	if _, err := db.Containers().View(ctx, 0, func(v meta.RecordView) error {
		sid = string(v.SandboxID())
		return nil
	}); err != nil || sid != "s1" {
		t.Errorf("container view: sandbox %q, %v", sid, err)
	}
}
