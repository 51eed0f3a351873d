package task_test

import (
	"testing"
	"time"
)

// A shim started ahead of its group's first container (Warm) is the one
// the create uses; released with no container, it exits; released with
// one, it stays until that container is deleted.
func TestWarmAndRelease(t *testing.T) {
	e := newEnv(t)
	ctx := nsCtx()
	if err := e.m.Warm(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	if n := e.m.LiveShims(); n != 1 {
		t.Fatalf("%d live shims after Warm, want 1", n)
	}
	if err := e.m.Warm(ctx, "early"); err != nil || e.m.LiveShims() != 1 {
		t.Fatalf("a second Warm: %v, %d shims", err, e.m.LiveShims())
	}
	tk, _ := e.create("early", "runc", "c", "sleep", "100")
	if n := e.m.LiveShims(); n != 1 {
		t.Fatalf("%d live shims after the create, want the warm one", n)
	}
	if err := e.m.Release(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := e.m.LiveShims(); n != 1 {
		t.Fatalf("a released shim holding a container exited: %d live", n)
	}
	remove(t, tk)

	// Released with nothing in it: it exits.
	if err := e.m.Warm(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Release(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Release(ctx, "no-such-group"); err != nil {
		t.Fatalf("release of a group without a shim: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.m.LiveShims() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d live shims after their release", e.m.LiveShims())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := e.leftovers(); len(left) != 0 {
		t.Fatalf("left after the release: %v", left)
	}
}
