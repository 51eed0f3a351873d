package sandbox

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
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
// writes the hostname and sysctls in them. On failure nothing it made is
// left.
func pinNamespaces(s PinSpec) (retErr error) {
	var own, net []string // the sysctls of the new namespaces, net.*
	for _, k := range slices.Sorted(maps.Keys(s.Sysctls)) {
		name := strings.ReplaceAll(k, "/", ".")
		switch {
		case strings.HasPrefix(name, "net."):
			if s.NetNS == "" {
				return fmt.Errorf("net sysctl %s without a pod network namespace: %w", name, errdefs.ErrInvalidArgument)
			}
			net = append(net, k)
		case s.IPC == "": // never the host's: validation refuses them
			return fmt.Errorf("sysctl %s without a pod IPC namespace: %w", name, errdefs.ErrInvalidArgument)
		default:
			own = append(own, k)
		}
	}
	var created []string
	defer func() {
		if retErr != nil {
			_ = unpinNamespaces(created...)
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
		if err := mount.CreateNSFile(f.path); err != nil {
			return fmt.Errorf("pod namespaces: %w", err)
		}
		created = append(created, f.path)
		flags |= f.flag
	}
	if flags != 0 {
		errc := make(chan error, 1)
		go func() {
			// Never unlocked: the thread, in the pod's namespaces, ends
			// with this goroutine.
			runtime.LockOSThread()
			errc <- pinOnThread(s, flags, own)
		}()
		if err := <-errc; err != nil {
			return fmt.Errorf("pod namespaces: %w", err)
		}
	}
	if len(net) > 0 {
		return cni.WithNetNS(s.NetNS, func() error { return writeSysctls(s.Sysctls, net) })
	}
	return nil
}

// pinOnThread runs on a locked thread that never runs anything else: it
// moves it into new namespaces (flags), sets its hostname and the sysctls
// keys, and pins them. The kernel resolves /proc/sys and the hostname in
// the namespaces of the calling thread.
func pinOnThread(s PinSpec, flags int, keys []string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare: %w: %w", err, errdefs.ErrInternal)
	}
	if s.UTS != "" && s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("hostname %q: %w: %w", s.Hostname, err, errdefs.ErrInvalidArgument)
		}
	}
	if err := writeSysctls(s.Sysctls, keys); err != nil {
		return err
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

// writeSysctls writes the sysctls keys of sysctls, in the namespaces of
// the calling thread.
func writeSysctls(sysctls map[string]string, keys []string) error {
	for _, k := range keys {
		if err := writeSysctl(strings.ReplaceAll(k, "/", "."), sysctls[k]); err != nil {
			return err
		}
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
		if p != "" {
			errs = append(errs, mount.RemoveNSFile(p))
		}
	}
	return errors.Join(errs...)
}
