package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// A pod's network namespace is pinned by bind-mounting it on a file of its
// own (<netns_dir>/<name>), so that it outlives the thread that created it
// and every process in it, until RemoveNetNS. Its path is what the pause
// container's runtime spec and CNI_NETNS name.
//
// Namespace work runs on a goroutine of its own (onLockedThread) that
// locks its OS thread and never unlocks it: when the goroutine returns, the
// Go runtime ends the thread, so a thread that entered a pod's namespace
// never runs another goroutine. The thread also switches back to its
// original namespace before it returns: the runtime cannot end the main
// thread, which it parks for good instead, and a main thread parked in a
// pod's namespace would keep that namespace (and its veth) alive after
// RemoveNetNS. (TestNetNSThreadsStayInHostNamespace catches that.)

// NewNetNS creates a network namespace and pins it on dir/name, creating
// dir 0700 if needed, and returns its path. The name is a file name (the
// sandbox ID, say). A file of that name already there is an AlreadyExists
// error; after any error nothing is left behind.
func NewNetNS(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("netns name %q: must be a file name: %w", name, errdefs.ErrInvalidArgument)
	}
	path := filepath.Join(dir, name)
	if err := mount.CreateNSFile(path); err != nil {
		return "", fmt.Errorf("netns: %w", err)
	}
	if err := onLockedThread(func() error { return pinNewNetNS(path) }); err != nil {
		_ = RemoveNetNS(path) // unmounts too, if only the way back failed
		return "", fmt.Errorf("netns %s: %w: %w", path, err, errdefs.ErrInternal)
	}
	return path, nil
}

// pinNewNetNS moves the calling thread, which must be locked and never
// unlocked, into a new network namespace and bind-mounts it on path.
func pinNewNetNS(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	return nil
}

// RemoveNetNS unpins the network namespace at path and removes the file.
// It is idempotent: a missing file or one that is not a mount point is no
// error. The namespace itself goes away once no process is left in it.
func RemoveNetNS(path string) error {
	if err := mount.RemoveNSFile(path); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	return nil
}

// ListNetNS returns the names of the files in dir: the pinned namespaces
// and any file a crash left half-made. The daemon compares them with its
// sandboxes at start and removes the others with RemoveNetNS. A missing
// dir holds none.
func ListNetNS(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns dir %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// IsNetNS reports whether path is a pinned network namespace (a file on
// nsfs), as opposed to a missing file or an empty one left unmounted.
func IsNetNS(path string) bool { return mount.IsNSFile(path) }

// WithNetNS runs fn on a locked OS thread inside the network namespace at
// path and returns its error. The thread ends afterwards. Sockets fn opens
// stay in that namespace and may be used from any goroutine; goroutines fn
// starts do not run in the namespace.
func WithNetNS(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer f.Close()
	return onLockedThread(func() error {
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns %s: setns: %w", path, err)
		}
		return fn()
	})
}

// onLockedThread runs fn, which may change the network namespace of its
// thread, on a locked thread that goes back to its original namespace
// afterwards and then ends.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("own netns: %w", err)
			return
		}
		defer orig.Close()
		err = fn()
		if e := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); e != nil && err == nil {
			// The thread ends anyway; only the main thread would stay.
			err = fmt.Errorf("back to own netns: %w", e)
		}
		errc <- err
	}()
	return <-errc
}

// loopbackUp sets the lo interface of the calling thread's network
// namespace up; the kernel then gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: set flags: %w", err)
	}
	return nil
}
