package fault

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// permException is a path, relative to the directory walked and matched
// with path.Match, whose mode departs from the rule, and why.
type permException struct {
	pattern string
	// skip: the subtree is not the daemon's to set (an image's files, a
	// mount); else mode is the directory's mode.
	skip bool
	mode uint32
	why  string
}

// The exceptions to "directories 0700" under the daemon's root, its state
// directory and its netns directory. Each lies inside a 0700 directory of
// the daemon, so no other user of the host reaches it.
var permExceptions = map[string][]permException{
	"root": {
		{pattern: "snapshots/overlayfs/snapshots/*/fs", skip: true, why: "a layer's tree: its root's mode is the image's /"},
		{pattern: "snapshots/native/snapshots/*", skip: true, why: "a native snapshot is the tree itself"},
		{pattern: "snapshots/overlayfs/snapshots/*/work", mode: 0o711, why: "overlayfs's work directory, as containerd's snapshotter makes it; the kernel uses it as the mounter"},
		{pattern: "snapshots/overlayfs/snapshots/*/work/*", skip: true, why: "made by the kernel's overlayfs in its work directory (work/work is 000)"},
	},
	"state": {
		{pattern: "cri/sandboxes/*/shm", skip: true, why: "the pod's /dev/shm: a tmpfs, 1777 as /dev/shm is"},
		{pattern: "cri/sandboxes/*/ipcns", skip: true, why: "the IPC namespace of a pod without a pause, an nsfs mount"},
		{pattern: "cri/sandboxes/*/utsns", skip: true, why: "the UTS namespace of a pod without a pause, an nsfs mount"},
		{pattern: "cri/volumes/*/*", skip: true, why: "an image volume: a read-only mount of the image's tree"},
		{pattern: "tasks/*/*/*/rootfs", skip: true, why: "a container's rootfs mount"},
		{pattern: "tasks/*/*/*/root/*", mode: 0o711, why: "runc's state directory of a container, made by runc inside its 0700 root"},
	},
	"netns": {
		{pattern: "*", skip: true, why: "a pod's network namespace, an nsfs mount"},
	},
}

// TestDaemonFilePermissions starts the daemon, runs a pod with a
// container, a container of another user with an image volume and an exec (so that
// shims, their sockets and bundles, the netns, the pod's files and
// /dev/shm, the image volume's mount, logs and exec FIFOs all exist),
// then walks the daemon's root, state and netns directories and checks
// every entry: owned by root; directories 0700 but for the exceptions
// above; sockets and FIFOs 0600; no file writable by group or others, none
// setuid or setgid; nothing else. The CRI and management sockets are 0600
// and the container logs are not readable by others. Every violation is
// reported.
func TestDaemonFilePermissions(t *testing.T) {
	h := newHostileNode(t)
	ctx := context.Background()
	pod, ctr := h.StartPod(ctx, "perm", "sleep", "3600")
	cc := h.ContainerConfig("volume", "sleep", "3600")
	cc.Mounts = []*runtime.Mount{{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: h.Busybox}}}
	cc.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}}
	id, err := h.RT.CreateContainer(ctx, pod, cc, h.PodConfig("perm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RT.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The daemon's 0700 directories do not keep a container's user from
	// what is bound from them: the pod's files, the image volume.
	for _, cmd := range [][]string{{"cat", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}, {"/img/bin/busybox", "true"}} {
		if out, stderr, err := h.RT.ExecSync(ctx, id, cmd, 10*time.Second); err != nil {
			t.Errorf("%v as uid 1000: %q %q, %v", cmd, out, stderr, err)
		}
	}
	execDone := make(chan error, 1)
	go func() {
		_, _, err := h.RT.ExecSync(ctx, ctr, []string{"sleep", "5"}, 30*time.Second)
		execDone <- err
	}()
	fifos := filepath.Join(h.SockDir, "state", "tasks", "fifo")
	waitFor(t, 10*time.Second, func() error {
		if ents, _ := os.ReadDir(fifos); len(ents) == 0 {
			return fmt.Errorf("no FIFO in %s", fifos)
		}
		return nil
	})

	mounts := mountPoints(t)
	for _, d := range []struct{ name, dir string }{
		{"root", filepath.Join(h.Dir, "root")},
		{"state", filepath.Join(h.SockDir, "state")},
		{"netns", h.Net.NetNSDir},
	} {
		checkTree(t, d.dir, permExceptions[d.name], mounts)
	}
	for _, sock := range []string{h.Socket(), filepath.Join(h.SockDir, "mgmt.sock")} {
		checkMode(t, sock, syscall.S_IFSOCK|0o600)
	}
	logs, _ := filepath.Glob(filepath.Join(h.Dir, "pods", "perm", "*.log"))
	if len(logs) != 2 {
		t.Errorf("container logs: %v", logs)
	}
	for _, l := range logs {
		var st syscall.Stat_t
		if err := syscall.Lstat(l, &st); err != nil || st.Mode&0o007 != 0 || st.Uid != 0 {
			t.Errorf("%s: mode %o uid %d (%v): a log is for root and its group", l, st.Mode, st.Uid, err)
		}
	}
	if err := <-execDone; err != nil {
		t.Errorf("exec: %v", err)
	}
}

// checkTree walks dir and reports every entry that breaks the rule.
func checkTree(t *testing.T, dir string, exceptions []permException, mounts map[string]bool) {
	t.Helper()
	checked := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // gone since it was listed: an exec's FIFOs
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil
		}
		checked++
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owned by %d:%d, not root", p, st.Uid, st.Gid)
		}
		ex, ok := exception(exceptions, rel)
		if ok && ex.skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if mounts[p] {
			t.Errorf("%s: a mount point no exception explains", p)
			return filepath.SkipDir
		}
		perm := st.Mode & 0o7777
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			want := uint32(0o700)
			if ok {
				want = ex.mode
			}
			if perm != want {
				t.Errorf("%s: directory %o, want %o", p, perm, want)
			}
		case syscall.S_IFSOCK, syscall.S_IFIFO:
			if perm != 0o600 {
				t.Errorf("%s: socket or FIFO %o, want 600", p, perm)
			}
		case syscall.S_IFREG:
			if perm&0o7022 != 0 {
				t.Errorf("%s: file %o: writable by others, or setuid", p, perm)
			}
		default:
			t.Errorf("%s: unexpected file type %o", p, st.Mode)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", dir, err)
	}
	if checked < 2 {
		t.Errorf("%s: only %d entries", dir, checked)
	}
	t.Logf("%s: %d entries checked", dir, checked)
}

func exception(exceptions []permException, rel string) (permException, bool) {
	if rel == "." {
		return permException{}, false
	}
	for _, e := range exceptions {
		if ok, _ := path.Match(e.pattern, rel); ok {
			return e, true
		}
	}
	return permException{}, false
}

func checkMode(t *testing.T, p string, want uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil || st.Mode != want || st.Uid != 0 {
		t.Errorf("%s: mode %o uid %d (%v), want %o owned by root", p, st.Mode, st.Uid, err, want)
	}
}

// mountPoints lists every mount point of this mount namespace.
func mountPoints(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out[f[4]] = true
		}
	}
	return out
}
