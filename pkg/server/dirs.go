package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// LockFile is the name of the file, in the root and in the state
// directory, that a running daemon holds an exclusive flock on and writes
// its pid into. It is left in place when the daemon stops: removing it
// would let two daemons lock two different files of the same name.
const LockFile = "lock"

// dirLock is a daemon's exclusive hold on one directory.
type dirLock struct {
	dir string
	f   *os.File // holds the flock while open
}

// claimDir makes dir the daemon's: it creates it 0700 if missing, refuses
// it when another user owns it, tightens its mode to 0700, and takes the
// exclusive lock of its LockFile, refusing at once when another process
// holds it. Nothing else in dir is touched before the lock is held.
func claimDir(logger klog.Logger, key, dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s %q: not a directory: %w", key, dir, errdefs.ErrFailedPrecondition)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s %q: owned by uid %d, not by the daemon's uid %d: %w",
			key, dir, st.Uid, os.Geteuid(), errdefs.ErrFailedPrecondition)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("%s %q: tighten mode %v to 0700: %w", key, dir, perm, err)
		}
		logger.Info("tightened directory permissions", "dir", dir, "was", perm.String(), "now", os.FileMode(0o700).String())
	}
	return lockDir(key, dir)
}

// lockDir takes the exclusive flock of dir's LockFile, without waiting,
// and writes the daemon's pid into it.
func lockDir(key, dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s %q: lock: %w", key, dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, inUseError(key, dir, path)
		}
		return nil, fmt.Errorf("%s %q: lock %s: %w", key, dir, path, err)
	}
	// The pid is for the message of a daemon refused above: best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{dir: dir, f: f}, nil
}

// inUseError says that another process holds dir, naming its pid when the
// lock file tells it. FailedPrecondition rather than Unavailable: starting
// again will not help until the other daemon is stopped or the directory
// changed, which an operator has to do.
func inUseError(key, dir, path string) error {
	holder := "another process"
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			holder = "pid " + strconv.Itoa(pid)
		}
	}
	return fmt.Errorf("%s %q: in use by %s (it holds %s); stop it or choose another %s: %w",
		key, dir, holder, path, key, errdefs.ErrFailedPrecondition)
}

// release drops the lock. The file stays (see LockFile).
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("unlock %q: %w", l.dir, err)
	}
	return nil
}
