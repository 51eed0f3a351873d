package spec

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// rootfsWith makes a rootfs whose etc/ is set up by mk.
func rootfsWith(t *testing.T, mk func(etc string)) string {
	t.Helper()
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	mk(etc)
	return root
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadUserDB(t *testing.T) {
	root := rootfsWith(t, func(etc string) {
		write(t, filepath.Join(etc, "passwd"), testPasswd)
		write(t, filepath.Join(etc, "group"), testGroup)
	})
	db, err := ReadUserDB(root)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := db.userByName("alice"); !ok || e.UID != 1000 {
		t.Fatalf("alice: %+v %v", e, ok)
	}
	if g, ok := db.groupByName("wheel"); !ok || g.GID != 10 {
		t.Fatalf("wheel: %+v %v", g, ok)
	}
}

func TestReadUserDBMissing(t *testing.T) {
	db, err := ReadUserDB(rootfsWith(t, func(string) {}))
	if err != nil || db.Passwd != nil || db.Group != nil {
		t.Fatalf("db %+v, err %v: want empty", db, err)
	}
	// /etc is a file: no database either.
	root := t.TempDir()
	write(t, filepath.Join(root, "etc"), "not a dir")
	if db, err = ReadUserDB(root); err != nil || db.Passwd != nil {
		t.Fatalf("etc as file: db %+v, err %v", db, err)
	}
}

// TestReadUserDBSymlinkEscape: an image whose /etc/passwd points outside the
// rootfs (absolute or by ..) must not read the host's file.
func TestReadUserDBSymlinkEscape(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "passwd")
	write(t, outside, "hostuser:x:7:7::/:/bin/sh\n")
	for name, target := range map[string]string{
		"absolute": outside,
		"dotdot":   "../../../../../../../../" + strings.TrimPrefix(outside, "/"),
	} {
		t.Run(name, func(t *testing.T) {
			root := rootfsWith(t, func(etc string) {
				if err := os.Symlink(target, filepath.Join(etc, "passwd")); err != nil {
					t.Fatal(err)
				}
			})
			db, err := ReadUserDB(root)
			if err == nil {
				if _, ok := db.userByName("hostuser"); ok {
					t.Fatal("read the host's passwd through a symlink")
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want InvalidArgument", err)
			}
		})
	}
	// A relative symlink that stays inside the rootfs is followed; an
	// absolute one is refused, even when it would name a file of the
	// image (os.Root does not re-root it; containerd's reader is the
	// same).
	root := rootfsWith(t, func(etc string) {
		write(t, filepath.Join(etc, "passwd.real"), "inside:x:8:8::/:/bin/sh\n")
		if err := os.Symlink("../etc/passwd.real", filepath.Join(etc, "passwd")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/etc/passwd.real", filepath.Join(etc, "group")); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := ReadUserDB(root); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("absolute symlink: error %v, want InvalidArgument", err)
	}
	if err := os.Remove(filepath.Join(root, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	db, err := ReadUserDB(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.userByName("inside"); !ok {
		t.Fatal("symlink inside the rootfs not followed")
	}
}

func TestReadUserDBOversized(t *testing.T) {
	root := rootfsWith(t, func(etc string) {
		write(t, filepath.Join(etc, "passwd"), strings.Repeat("#", MaxUserFileSize)+"\n")
	})
	if _, err := ReadUserDB(root); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Fatalf("error %v, want InvalidArgument naming /etc/passwd", err)
	}
	root = rootfsWith(t, func(etc string) {
		write(t, filepath.Join(etc, "group"), strings.Repeat("#", MaxUserFileSize-1)+"\n")
	})
	if _, err := ReadUserDB(root); err != nil {
		t.Fatalf("a file of exactly the limit: %v", err)
	}
}

// TestReadUserDBNotRegular: a FIFO or a directory in place of the file is
// refused without blocking on the FIFO.
func TestReadUserDBNotRegular(t *testing.T) {
	root := rootfsWith(t, func(etc string) {
		if err := syscall.Mkfifo(filepath.Join(etc, "group"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	done := make(chan error, 1)
	go func() { _, err := ReadUserDB(root); done <- err }()
	select {
	case err := <-done:
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("fifo: error %v, want InvalidArgument", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadUserDB blocked on a FIFO")
	}
	root = rootfsWith(t, func(etc string) {
		if err := os.Mkdir(filepath.Join(etc, "passwd"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := ReadUserDB(root); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("directory: error %v, want InvalidArgument", err)
	}
}
