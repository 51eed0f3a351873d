package cni_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// threadNetNS returns the identity of the calling thread's namespace.
func threadNetNS(t *testing.T) string {
	t.Helper()
	id, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNetNSLifecycle(t *testing.T) {
	testenv.NeedRoot(t, "network namespaces")
	dir := filepath.Join(t.TempDir(), "netns")
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	path, err := cni.NewNetNS(dir, "pod1")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "pod1") || !cni.IsNetNS(path) {
		t.Fatalf("NewNetNS = %q, IsNetNS %v", path, cni.IsNetNS(path))
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("netns dir: %v %v", fi.Mode(), err)
	}
	if _, err := cni.NewNetNS(dir, "pod1"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second NewNetNS: %v, want AlreadyExists", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := cni.NewNetNS(dir, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("NewNetNS(%q): %v, want InvalidArgument", bad, err)
		}
	}

	// Inside: another namespace, with only lo, down.
	var inside string
	var ifs []net.Interface
	err = cni.WithNetNS(path, func() (err error) {
		inside = threadNetNS(t)
		ifs, err = net.Interfaces()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside == host || len(ifs) != 1 || ifs[0].Name != "lo" || ifs[0].Flags&net.FlagUp != 0 {
		t.Fatalf("inside %s (host %s): interfaces %v", inside, host, ifs)
	}

	names, err := cni.ListNetNS(dir)
	if err != nil || len(names) != 1 || names[0] != "pod1" {
		t.Fatalf("ListNetNS = %v, %v", names, err)
	}
	for range 2 {
		if err := cni.RemoveNetNS(path); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) || cni.IsNetNS(path) {
		t.Fatalf("netns file after RemoveNetNS: %v", err)
	}
	// An empty file left by a crash between create and mount goes too.
	if err := os.WriteFile(filepath.Join(dir, "half"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cni.IsNetNS(filepath.Join(dir, "half")) {
		t.Fatal("an empty file is no netns")
	}
	if err := cni.RemoveNetNS(filepath.Join(dir, "half")); err != nil {
		t.Fatal(err)
	}
	if names, _ := cni.ListNetNS(dir); len(names) != 0 {
		t.Fatalf("left: %v", names)
	}
	if names, err := cni.ListNetNS(filepath.Join(dir, "nope")); err != nil || names != nil {
		t.Fatalf("ListNetNS of a missing dir: %v, %v", names, err)
	}
}

// TestNetNSThreadsStayInHostNamespace guards the locked-thread rule: after
// many creations and entries, every thread of the process is still in the
// host's namespace (a thread that entered a pod's and went back to the
// pool would run other goroutines, their sockets and plugins, in the pod).
func TestNetNSThreadsStayInHostNamespace(t *testing.T) {
	testenv.NeedRoot(t, "network namespaces")
	dir := t.TempDir()
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		path, err := cni.NewNetNS(dir, "ns"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cni.WithNetNS(path, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := cni.RemoveNetNS(path); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		if ns != host {
			t.Errorf("thread %s is in %s, not the host's %s", task.Name(), ns, host)
		}
	}
}
