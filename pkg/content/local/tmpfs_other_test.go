//go:build !linux

package local

// isTmpfs is only known on Linux; elsewhere os.TempDir() is trusted.
func isTmpfs(string) bool { return false }
