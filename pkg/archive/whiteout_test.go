package archive

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// lower applies a first layer standing for what lower layers show in a
// mounted overlay or a native snapshot.
func lower(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mustApply(t, root, layer(t,
		reg("gone", "g", 0o644),
		dir("tree/", 0o755), dir("tree/sub/", 0o755), reg("tree/sub/f", "f", 0o644),
		dir("opq/", 0o755), reg("opq/old1", "1", 0o644), dir("opq/olddir/", 0o755), reg("opq/olddir/x", "x", 0o644),
		dir("opq2/", 0o755), reg("opq2/old", "o", 0o644),
		reg("stays", "s", 0o644),
	))
	return root
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWhiteoutDeleteRemovesNames(t *testing.T) {
	root := lower(t)
	mustApply(t, root, layer(t, whiteout(".wh.gone"), whiteout("tree/.wh.sub"), whiteout(".wh.never-existed"), whiteout(".wh..wh.plnk")))
	if got := names(t, root); !slices.Equal(got, []string{"opq", "opq2", "stays", "tree"}) {
		t.Fatalf("root holds %v", got)
	}
	if got := names(t, filepath.Join(root, "tree")); len(got) != 0 {
		t.Fatalf("tree holds %v", got)
	}
}

func TestWhiteoutDeleteOpaqueKeepsOnlyThisLayer(t *testing.T) {
	root := lower(t)
	mustApply(t, root, layer(t,
		// Marker first, the usual order.
		dir("opq/", 0o755), whiteout("opq/.wh..wh..opq"), reg("opq/new", "n", 0o644),
		// Marker after this layer's own children, including ones whose
		// directory is created implicitly: they stay.
		reg("opq2/mine", "m", 0o644), reg("opq2/implicit/deep/f", "d", 0o644), whiteout("opq2/.wh..wh..opq"),
	))
	if got := names(t, filepath.Join(root, "opq")); !slices.Equal(got, []string{"new"}) {
		t.Errorf("opq holds %v", got)
	}
	if got := names(t, filepath.Join(root, "opq2")); !slices.Equal(got, []string{"implicit", "mine"}) {
		t.Errorf("opq2 holds %v", got)
	}
	if !exists(filepath.Join(root, "opq2/implicit/deep/f")) {
		t.Error("implicit directory's content removed")
	}
	if !exists(filepath.Join(root, "stays")) {
		t.Error("opaque whiteout reached beyond its directory")
	}
	// A marker never lands on disk in delete mode.
	if exists(filepath.Join(root, "opq/.wh..wh..opq")) {
		t.Error("opaque marker written as a file")
	}
}

func TestWhiteoutOverlayWritesDevicesAndXattrs(t *testing.T) {
	for _, tc := range []struct {
		mode WhiteoutOverlay
		key  string
	}{
		{WhiteoutOverlay{}, "trusted.overlay.opaque"},
		{WhiteoutOverlay{UserXattr: true}, "user.overlay.opaque"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			upper := t.TempDir()
			mustApply(t, upper, layer(t,
				whiteout(".wh.gone"), dir("d/", 0o755), whiteout("d/.wh..wh..opq"), reg("d/new", "n", 0o644),
				whiteout("implicit/.wh.x"), whiteout(".wh..wh.plnk"),
			), WithWhiteoutMode(tc.mode))
			for _, p := range []string{"gone", "implicit/x"} {
				st := lstat(t, filepath.Join(upper, p))
				if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
					t.Errorf("%s: mode %o rdev %d, want a 0/0 character device", p, st.Mode, st.Rdev)
				}
			}
			buf := make([]byte, 8)
			n, err := unix.Lgetxattr(filepath.Join(upper, "d"), tc.key, buf)
			if err != nil || string(buf[:n]) != "y" {
				t.Errorf("%s on d: %q, %v", tc.key, buf[:max(n, 0)], err)
			}
			if got := names(t, upper); !slices.Equal(got, []string{"d", "gone", "implicit"}) {
				t.Errorf("upper holds %v", got)
			}
			if !exists(filepath.Join(upper, "d/new")) {
				t.Error("content of the opaque directory missing")
			}
		})
	}
}

func TestWhiteoutOverlayReplacesEntryOfSameLayer(t *testing.T) {
	upper := t.TempDir()
	mustApply(t, upper, layer(t, reg("x", "x", 0o644), whiteout(".wh.x")), WithWhiteoutMode(WhiteoutOverlay{}))
	if st := lstat(t, filepath.Join(upper, "x")); st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("x: mode %o", st.Mode)
	}
}
