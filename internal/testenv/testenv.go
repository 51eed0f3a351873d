// Package testenv decides what a test does when this machine lacks a part
// it needs (a tool, root, a kernel feature): skip, saying what is missing,
// or, when CRI_RUNTIME_TEST_STRICT is set, fail. hack/test.sh sets it, so
// that CI proves the whole suite on a machine hack/deps.sh prepared rather
// than pass with parts of it skipped in silence.
//
// This package imports only the standard library.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// StrictEnv is the environment variable that turns skips into failures.
const StrictEnv = "CRI_RUNTIME_TEST_STRICT"

// Strict reports whether a missing part fails the test.
func Strict() bool { return os.Getenv(StrictEnv) != "" }

// Missing stops t because this machine lacks what format describes: a skip,
// or a failure under CRI_RUNTIME_TEST_STRICT.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s is set: hack/deps.sh installs what the tests need)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// NeedRoot stops t unless it runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Getuid() != 0 {
		Missing(t, "%s needs root", why)
	}
}

// SmallFS mounts a fresh ext4 filesystem of sizeMiB on a new directory,
// unmounted when the test ends, for tests that fill a disk. It needs root,
// mkfs.ext4 and loop devices.
func SmallFS(t testing.TB, sizeMiB int) string {
	t.Helper()
	NeedRoot(t, "a loop-mounted filesystem")
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		Missing(t, "mkfs.ext4 is not installed (Debian package e2fsprogs): %v", err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		Missing(t, "loop mount of a small filesystem: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			_ = exec.Command("umount", "-l", mnt).Run()
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
