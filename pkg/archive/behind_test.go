package archive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A layer's large files are on disk and out of the page cache once it is
// applied; its small files are left to the final syncfs, cached.
func TestApplyDropsLargeFilesBehind(t *testing.T) {
	root := t.TempDir()
	skipWithoutPageDrop(t, root)
	big := bytes.Repeat([]byte("layer data "), (1<<20)/11)
	var ents []ent
	// More files and bytes than the queue holds, so files are dropped
	// on the way as well as at the end.
	for i := range behindFiles + 8 {
		ents = append(ents, reg(fmt.Sprintf("big%d", i), string(big), 0o644), reg(fmt.Sprintf("small%d", i), "small", 0o644))
	}
	mustApply(t, root, layer(t, ents...))
	for i := range behindFiles + 8 {
		if n := residentPages(t, filepath.Join(root, fmt.Sprintf("big%d", i))); n != 0 {
			t.Errorf("big%d: %d pages still cached", i, n)
		}
		if n := residentPages(t, filepath.Join(root, fmt.Sprintf("small%d", i))); n != 1 {
			t.Errorf("small%d: %d pages cached, want 1", i, n)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "big0"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big0: %d bytes, %v; want %d", len(got), err, len(big))
	}
}

// A failing layer closes the files it queued: nothing stays open.
func TestApplyFailureClosesQueuedFiles(t *testing.T) {
	root := t.TempDir()
	before := openFDs(t)
	big := string(bytes.Repeat([]byte("x"), writebackMin))
	_, err := apply(t, root, layer(t, reg("a", big, 0o644), reg("b", big, 0o644), reg("../escape", "x", 0o644)))
	if err == nil {
		t.Fatal("a layer writing outside its root applied")
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors open after a failed apply, %d before", after, before)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// skipWithoutPageDrop skips where the page cache cannot drop a file's
// pages: tmpfs holds them as the file itself.
func skipWithoutPageDrop(t *testing.T, dir string) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is on tmpfs, whose pages are the files themselves: nothing to drop", dir)
	}
}

// residentPages counts the pages of the file at p in the page cache.
func residentPages(t *testing.T, p string) int {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		t.Fatalf("%s: %v, size %d", p, err, st.Size())
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
