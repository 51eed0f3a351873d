package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// inNamespaces runs fn on a thread of its own moved into the namespaces
// pinned at paths (type → path), and returns its error.
func inNamespaces(paths map[int]string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with it
		for typ, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				errc <- err
				return
			}
			err = unix.Setns(int(f.Fd()), typ)
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("setns %s: %w", p, err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

// The pinned IPC and UTS namespaces are new ones, hold the hostname and
// the sysctls (the IPC ones in the IPC namespace, net.* in the pod's
// network namespace), and are gone once unpinned.
func TestPinNamespaces(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: namespaces and mounts")
	}
	dir := t.TempDir()
	netns, err := cni.NewNetNS(filepath.Join(dir, "net"), "pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cni.RemoveNetNS(netns) })
	hostShmmax, _ := readSysctl("kernel.shmmax")
	hostSomaxconn, _ := readSysctl("net.core.somaxconn")
	s := PinSpec{IPC: filepath.Join(dir, "ns", "ipc"), UTS: filepath.Join(dir, "ns", "uts"), Hostname: "pinned-pod", NetNS: netns,
		Sysctls: map[string]string{"kernel.shmmax": "1000000", "net/core/somaxconn": "777"}}
	if err := pinNamespaces(s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unpinNamespaces(s.IPC, s.UTS) })
	if !mount.IsNSFile(s.IPC) || !mount.IsNSFile(s.UTS) {
		t.Fatalf("not pinned: ipc %v, uts %v", mount.IsNSFile(s.IPC), mount.IsNSFile(s.UTS))
	}
	err = inNamespaces(map[int]string{unix.CLONE_NEWIPC: s.IPC, unix.CLONE_NEWUTS: s.UTS, unix.CLONE_NEWNET: netns}, func() error {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		if h := unix.ByteSliceToString(u.Nodename[:]); h != "pinned-pod" {
			return fmt.Errorf("hostname %q", h)
		}
		for name, want := range map[string]string{"kernel.shmmax": "1000000", "net.core.somaxconn": "777"} {
			if got, err := readSysctl(name); err != nil || got != want {
				return fmt.Errorf("%s in the pod: %q, %v; want %q", name, got, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readSysctl("kernel.shmmax"); got != hostShmmax {
		t.Errorf("host kernel.shmmax changed: %q, was %q", got, hostShmmax)
	}
	if got, _ := readSysctl("net.core.somaxconn"); got != hostSomaxconn {
		t.Errorf("host net.core.somaxconn changed: %q, was %q", got, hostSomaxconn)
	}
	if err := unpinNamespaces(s.IPC, s.UTS); err != nil {
		t.Fatal(err)
	}
	if err := unpinNamespaces(s.IPC, s.UTS); err != nil {
		t.Fatalf("second unpin: %v", err)
	}
	for _, p := range []string{s.IPC, s.UTS} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after unpin: %v", p, err)
		}
	}
}

// A pin that fails half-way (a sysctl this kernel does not have) leaves
// no file and no mount, and says InvalidArgument.
func TestPinNamespacesFailureLeavesNothing(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: namespaces and mounts")
	}
	dir := t.TempDir()
	s := PinSpec{IPC: filepath.Join(dir, "ipc"), UTS: filepath.Join(dir, "uts"), Hostname: "x",
		Sysctls: map[string]string{"kernel.shm_no_such_sysctl": "1"}}
	err := pinNamespaces(s)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err %v, want InvalidArgument", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left after a failed pin: %v", entries)
	}
	// A net sysctl without a network namespace is refused, not written to
	// the host's.
	s = PinSpec{IPC: filepath.Join(dir, "ipc"), Sysctls: map[string]string{"net.core.somaxconn": "1"}}
	if err := pinNamespaces(s); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("net sysctl without a netns: %v, want InvalidArgument", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left after a failed pin: %v", entries)
	}
	// A file already there is AlreadyExists, and stays: it is not this
	// pin's to remove.
	if err := os.WriteFile(filepath.Join(dir, "uts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s = PinSpec{IPC: filepath.Join(dir, "ipc"), UTS: filepath.Join(dir, "uts")}
	if err := pinNamespaces(s); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("pin over an existing file: %v, want AlreadyExists", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "uts" {
		t.Fatalf("after a pin over an existing file: %v, want the file alone", entries)
	}
}
