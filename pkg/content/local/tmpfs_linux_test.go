package local

import "syscall"

const tmpfsMagic = 0x01021994

// isTmpfs reports whether dir is on tmpfs, where a write benchmark would
// measure memory, not the disk.
func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}
