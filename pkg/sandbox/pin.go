package sandbox

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// A pod without a pause container (one that shares no PID namespace, the
// default, as CRI-O's drop_infra_ctr) keeps its namespaces without a
// process: its IPC and UTS namespaces are pinned on files, as its network
// namespace is, and its containers join them by path. The hostname and
// the sysctls the pause's runtime would have set are set here, once.

// PinSpec is what the pinned namespaces of a pod are made with.
type PinSpec struct {
	// IPC and UTS are the paths to pin a new IPC and a new UTS namespace
	// on; "" pins none (the pod uses the host's).
	IPC, UTS string
	// Hostname is set in the new UTS namespace.
	Hostname string
	// NetNS is the pod's network namespace, where the net.* sysctls are
	// written; "" with the host's network (Sysctls has none then).
	NetNS string
	// Sysctls are the pod's, validated (spec.ValidateSysctls): net.* go
	// to NetNS, the IPC ones to the new IPC namespace.
	Sysctls map[string]string
}

// pinNamespaces makes the namespaces of s, each pinned on its file, and
// writes the hostname and sysctls in them. On failure nothing is left.
func pinNamespaces(s PinSpec) (retErr error) {
	if s.IPC == "" && s.UTS == "" && len(s.Sysctls) == 0 {
		return nil
	}
	defer func() {
		if retErr != nil {
			_ = unpinNamespaces(s.IPC, s.UTS)
		}
	}()
	var flags int
	for _, f := range []struct {
		path string
		flag int
	}{{s.IPC, unix.CLONE_NEWIPC}, {s.UTS, unix.CLONE_NEWUTS}} {
		if f.path == "" {
			continue
		}
		if err := createPinFile(f.path); err != nil {
			return err
		}
		flags |= f.flag
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, in the pod's namespaces, ends with
		// this goroutine.
		runtime.LockOSThread()
		errc <- pinOnThread(s, flags)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("pod namespaces: %w", err)
	}
	return nil
}

// createPinFile creates the empty file a namespace is bind-mounted on.
func createPinFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pod namespace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pod namespace %s: %w", path, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("pod namespace %s: %w", path, err)
	}
	return f.Close()
}

// pinOnThread runs on a locked thread that never runs anything else: it
// moves it into new namespaces (flags), sets them up, and pins them. The
// kernel resolves /proc/sys and the hostname in the namespaces of the
// calling thread.
func pinOnThread(s PinSpec, flags int) error {
	if flags != 0 {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare: %w: %w", err, errdefs.ErrInternal)
		}
	}
	if s.UTS != "" && s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("hostname %q: %w: %w", s.Hostname, err, errdefs.ErrInvalidArgument)
		}
	}
	var net []string
	for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
		name := strings.ReplaceAll(k, "/", ".")
		if strings.HasPrefix(name, "net.") {
			net = append(net, k)
			continue
		}
		if s.IPC == "" { // never the host's: validation refuses them
			return fmt.Errorf("sysctl %s without a pod IPC namespace: %w", name, errdefs.ErrInvalidArgument)
		}
		if err := writeSysctl(name, s.Sysctls[k]); err != nil {
			return err
		}
	}
	if len(net) > 0 {
		if err := joinNetNS(s.NetNS); err != nil {
			return err
		}
		for _, k := range net {
			if err := writeSysctl(strings.ReplaceAll(k, "/", "."), s.Sysctls[k]); err != nil {
				return err
			}
		}
	}
	for _, p := range []struct{ path, ns string }{{s.IPC, "ipc"}, {s.UTS, "uts"}} {
		if p.path == "" {
			continue
		}
		if err := unix.Mount("/proc/thread-self/ns/"+p.ns, p.path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin the %s namespace on %s: %w: %w", p.ns, p.path, err, errdefs.ErrInternal)
		}
	}
	return nil
}

// joinNetNS moves the calling thread into the network namespace at path.
func joinNetNS(path string) error {
	if path == "" {
		return fmt.Errorf("net sysctls without a pod network namespace: %w", errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns %s: setns: %w: %w", path, err, errdefs.ErrInternal)
	}
	return nil
}

// writeSysctl writes value to the sysctl name (dotted), in the namespaces
// of the calling thread. A sysctl the kernel does not have is
// InvalidArgument, as runc reports it.
func writeSysctl(name, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sysctl %s: not in this kernel: %w", name, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", name, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("sysctl %s=%q: %w: %w", name, value, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// unpinNamespaces unmounts and removes the pinned namespace files; what is
// already gone is no error. A namespace ends once no container is left in
// it.
func unpinNamespaces(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		for range 8 { // stacked mounts: unmount until it is no mount point
			err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if err == nil {
				continue
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("pod namespace %s: unmount: %w", p, err))
			}
			break
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pod namespace %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// pinned reports whether path holds a pinned namespace (a bind mount of
// nsfs): false after a reboot, or once unpinned.
func pinned(path string) bool {
	var st unix.Statfs_t
	return path != "" && unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
