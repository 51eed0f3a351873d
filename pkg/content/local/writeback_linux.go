package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now, without waiting for it. Left alone, the kernel keeps a large blob's
// pages dirty (up to dirty_background_ratio of RAM) and the disk idles until
// Commit's fsync writes everything at once; started early, the disk works
// while the writer hashes and writes the next chunks, and the fsync only
// waits for the tail. Errors are ignored: Commit's fsync is what guarantees
// durability and reports I/O errors.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}

// dropWritten waits until [off, off+n) of f is on disk and drops its pages
// from the page cache. A blob is written once and read, if ever, for an
// unpack that mostly streams it as it arrives; cached, it only pushes out
// what the node reads, and the next chunks take fresh pages instead of
// reusing these (see pkg/archive/behind.go for the figures). Errors are
// ignored as in startWriteback.
func dropWritten(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER) == nil {
			_ = unix.Fadvise(int(fd), off, n, unix.FADV_DONTNEED)
		}
	})
}
