package mount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "mounting")
}

func isMountPoint(t *testing.T, p string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func TestReadOnlyBindNeedsRemount(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MountAll([]Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}, dst); err != nil {
		t.Fatal(err)
	}
	defer UnmountAll(dst)
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "x" {
		t.Fatalf("read through bind: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dst, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write into ro bind: want EROFS, got %v", err)
	}
	if err := UnmountAll(dst); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(t, dst) {
		t.Fatal("still mounted after UnmountAll")
	}
}

func TestUnmountAllStackedAndNotMounted(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	for range 3 {
		if err := MountAll([]Mount{{Type: "bind", Source: src, Options: []string{"bind"}}}, dst); err != nil {
			t.Fatal(err)
		}
	}
	if err := UnmountAll(dst); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(t, dst) {
		t.Fatal("a stacked mount is left")
	}
	if err := UnmountAll(dst); err != nil {
		t.Fatalf("not a mount point: %v", err)
	}
	if err := UnmountAll(filepath.Join(dst, "missing")); err != nil {
		t.Fatalf("missing target: %v", err)
	}
}

func TestUnmountAllDetachesBusyMount(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	if err := MountAll([]Mount{{Type: "bind", Source: src}}, dst); err != nil {
		t.Fatal(err)
	}
	// An open directory keeps the mount busy until detached.
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := UnmountAll(dst); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(t, dst) {
		t.Fatal("busy mount not detached")
	}
}

func TestMountAllUndoesOnFailure(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	err := MountAll([]Mount{
		{Type: "bind", Source: src, Options: []string{"rbind"}},
		{Type: "bind", Source: filepath.Join(src, "missing"), Target: "sub"},
	}, dst)
	if err == nil {
		t.Fatal("second mount should fail")
	}
	if isMountPoint(t, dst) {
		t.Fatal("first mount left after a failure")
	}
	err = MountAll([]Mount{{Type: "bind", Source: src, Target: "../escape"}}, dst)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("target escaping the root: want InvalidArgument, got %v", err)
	}
}

func TestWithTempMountCleansUp(t *testing.T) {
	needRoot(t)
	src, tmp := t.TempDir(), t.TempDir()
	boom := errors.New("boom")
	ctx, cancel := context.WithCancel(context.Background())
	var seen string
	err := WithTempMountIn(ctx, tmp, []Mount{{Type: "bind", Source: src, Options: []string{"rbind", "rw"}}}, func(root string) error {
		seen = root
		if !isMountPoint(t, root) {
			t.Error("fn called before the mount")
		}
		cancel() // the cleanup must still happen
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error of fn lost: %v", err)
	}
	if _, err := os.Stat(seen); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary mount point left behind: %v", err)
	}
	if err := WithTempMountIn(ctx, tmp, nil, func(string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

// What a killed process left in its temporary mount directory, mounted
// (twice over) or not, is unmounted and removed; the files under a mount
// are not touched.
func TestCleanupTempMounts(t *testing.T) {
	needRoot(t)
	src, tmp := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "kept"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bind := Mount{Type: "bind", Source: src, Options: []string{"rbind", "rw"}}
	for _, name := range []string{"cri-runtime-mount-1", "cri-runtime-mount-2", "empty"} {
		dir := filepath.Join(tmp, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if name == "empty" {
			continue
		}
		if err := MountAll([]Mount{bind}, dir); err != nil {
			t.Fatal(err)
		}
		if name == "cri-runtime-mount-2" {
			if err := MountAll([]Mount{bind}, dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := CleanupTempMounts(context.Background(), tmp); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Fatalf("left in the directory: %v, %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(src, "kept")); err != nil {
		t.Fatalf("a mounted file: %v", err)
	}
	if err := CleanupTempMounts(context.Background(), filepath.Join(tmp, "none")); err != nil {
		t.Fatalf("no directory: %v", err)
	}
}

// TestOverlayLongLowerdir guards the relative-path mount: 150 layers whose
// absolute paths do not fit in one page.
func TestOverlayLongLowerdir(t *testing.T) {
	needRoot(t)
	base := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 3))
	var lowers []string
	for i := range 150 {
		d := filepath.Join(base, "layers", strings.Repeat("x", 3)+string(rune('a'+i%26))+"-"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{d}, lowers...)
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=" + strings.Join(lowers, ":")}}
	if len(strings.Join(m.Options, ",")) <= os.Getpagesize() {
		t.Fatal("the test must exceed a page")
	}
	err := WithTempMountIn(context.Background(), t.TempDir(), []Mount{m}, func(root string) error {
		for _, i := range []int{0, 77, 149} {
			if b, err := os.ReadFile(filepath.Join(root, "f"+strconv.Itoa(i))); err != nil || string(b) != strconv.Itoa(i) {
				return errors.New("layer " + strconv.Itoa(i) + " not visible")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if strings.HasPrefix(wd, base) {
		t.Fatal("the mount changed the working directory of the process")
	}
}

func TestCompactOverlayOptions(t *testing.T) {
	short := []string{"lowerdir=/a/b:/a/c", "upperdir=/a/u", "workdir=/a/w"}
	if dir, out, err := compactOverlayOptions(short); err != nil || dir != "" || strings.Join(out, ",") != strings.Join(short, ",") {
		t.Fatalf("short options changed: %q %q %v", dir, out, err)
	}
	var lowers []string
	for range 200 {
		lowers = append(lowers, "/var/lib/x/snapshots/12345/fs")
	}
	long := []string{"index=off", "lowerdir=" + strings.Join(lowers, ":"), "upperdir=/var/lib/x/snapshots/9/fs", "workdir=/var/lib/x/snapshots/9/work"}
	dir, out, err := compactOverlayOptions(long)
	if err != nil {
		t.Fatal(err)
	}
	if dir != "/var/lib/x/snapshots" {
		t.Fatalf("common dir %q", dir)
	}
	if out[0] != "index=off" || out[2] != "upperdir=9/fs" || out[3] != "workdir=9/work" || !strings.HasPrefix(out[1], "lowerdir=12345/fs:12345/fs") {
		t.Fatalf("compacted options %q", out)
	}
	tooMany := []string{"lowerdir=" + strings.Repeat("/a/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:", 200) + "/a/b"}
	if _, _, err := compactOverlayOptions(tooMany); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("options too long even relative: want InvalidArgument, got %v", err)
	}
	if got := commonDir([]string{"/a/b/c", "/a/b/d/e", "/a/bc"}); got != "/a" {
		t.Fatalf("commonDir: %q", got)
	}
}

func TestParseMountOptions(t *testing.T) {
	flags, data, prop := parseMountOptions([]string{"rbind", "ro", "nosuid", "rw", "rprivate", "lowerdir=/x", "index=off"})
	if flags != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID {
		t.Errorf("flags %#x", flags)
	}
	if strings.Join(data, ",") != "lowerdir=/x,index=off" {
		t.Errorf("data %q", data)
	}
	if prop != unix.MS_PRIVATE|unix.MS_REC {
		t.Errorf("propagation %#x", prop)
	}
}
