package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A large ingest keeps in the page cache only its last chunks: what lies
// two chunks behind is on disk and dropped as the writer goes on, and the
// blob still commits whole.
func TestWriterDropsWrittenPages(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if isTmpfs(root) {
		t.Skipf("%s is on tmpfs, whose pages are the files themselves: nothing to drop", root)
	}
	cs := newTestStore(t, root)
	b := bytes.Repeat([]byte("blob data "), 5*writeBehind/10)
	desc := descOf(b)
	w := openWriter(t, cs, "big", desc)
	for off := 0; off < len(b); off += 1 << 20 {
		write(t, w, b[off:min(off+1<<20, len(b))])
	}
	sum := sha256.Sum256([]byte("big"))
	data := filepath.Join(root, "ingest", hex.EncodeToString(sum[:]), dataFile)
	vec := residency(t, data)
	page := os.Getpagesize()
	dropped := int(3 * writeBehind / page) // writeback at 40 MiB drops up to 24 MiB
	for i, v := range vec {
		if i < dropped && v&1 != 0 {
			t.Fatalf("page %d of %d (offset %d) still cached; want the first %d dropped", i, len(vec), i*page, dropped)
		}
	}
	if last := vec[len(vec)-1]; last&1 == 0 {
		t.Fatal("the last page written is not cached; nothing should drop it yet")
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
}

// residency is the mincore(2) vector of the file at p.
func residency(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
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
	return vec
}
