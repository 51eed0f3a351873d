//go:build !linux

package local

import "os"

// startWriteback is a no-op where sync_file_range does not exist: Commit's
// fsync writes everything.
func startWriteback(*os.File, int64, int64) {}

// dropWritten is a no-op there too.
func dropWritten(*os.File, int64, int64) {}
