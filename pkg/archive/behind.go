package archive

import "golang.org/x/sys/unix"

// Drop-behind of large files. A layer's files are written once and read,
// if ever, when a container starts; kept in the page cache they only push
// out what the node reads. So, once a large file's writeback is done, its
// pages are dropped, and the next files reuse them instead of taking fresh
// ones. Measured on a VM whose fresh pages are slow to fault in (the host
// backs guest memory lazily): writing 1000 MiB after drop_caches took 11.9 s
// plain, 2.7 s with writeback started every 8 MiB, 0.6 s when each range,
// two behind, is also waited for and dropped.
//
// The files stay open until then: their writeback is started when they are
// written (entries.go), and waited for once behindMax bytes or
// behindFiles files are queued after them, so the disk stays busy while the
// layer goes on.
const (
	behindMax   = 32 << 20
	behindFiles = 64
)

// behindFile is a written file whose writeback was started and whose
// descriptor is still open.
type behindFile struct {
	fd   int
	name string
	size int64
}

// behind is the applier's queue of such files, oldest first.
type behind struct {
	files []behindFile
	bytes int64
}

// add queues a written file, then waits for and drops the oldest while the
// queue holds too much. Each file is closed once dropped; a close error is
// the file's.
func (b *behind) add(f behindFile) error {
	b.files = append(b.files, f)
	b.bytes += f.size
	for len(b.files) > 1 && (b.bytes > behindMax || len(b.files) > behindFiles) {
		if err := b.dropOldest(); err != nil {
			return err
		}
	}
	return nil
}

func (b *behind) dropOldest() error {
	f := b.files[0]
	b.files = b.files[1:]
	b.bytes -= f.size
	// Errors of the wait are left to the layer's syncfs, which reports
	// them; a failed wait only means the pages may not be dropped.
	if unix.SyncFileRange(f.fd, 0, 0, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER) == nil {
		_ = unix.Fadvise(f.fd, 0, 0, unix.FADV_DONTNEED)
	}
	if err := unix.Close(f.fd); err != nil {
		return entryError(f.name, "close", err)
	}
	return nil
}

// flush drops every queued file, as at the end of a layer.
func (b *behind) flush() error {
	for len(b.files) > 0 {
		if err := b.dropOldest(); err != nil {
			b.close()
			return err
		}
	}
	return nil
}

// close closes every queued file without waiting, as when a layer fails.
func (b *behind) close() {
	for _, f := range b.files {
		unix.Close(f.fd)
	}
	b.files, b.bytes = nil, 0
}
