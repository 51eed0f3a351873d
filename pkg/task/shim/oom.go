package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
)

// watchOOM calls onOOM each time the kernel's OOM killer acts in the
// memory cgroup cg, until stop is called or the cgroup is removed.
//
// cgroup v1: an eventfd registered on memory.oom_control through
// cgroup.event_control. cgroup v2: inotify on memory.events, whose
// oom_kill counter is compared with its last value. Both file
// descriptors are non-blocking and read through Go's poller: a watch
// costs a parked goroutine, not a thread.
func watchOOM(cg *cgroups.Cgroup, onOOM func()) (stop func(), err error) {
	if cg.V2 {
		return watchMemoryEvents(filepath.Join(cg.Unified, "memory.events"), onOOM)
	}
	return watchOOMControl(cg.MemoryDir(), onOOM)
}

func watchOOMControl(dir string, onOOM func()) (func(), error) {
	control := filepath.Join(dir, "memory.oom_control")
	oc, err := os.Open(control)
	if err != nil {
		return nil, fmt.Errorf("oom watch: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		oc.Close()
		return nil, fmt.Errorf("oom watch: eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	reg := fmt.Sprintf("%d %d", efd, oc.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ev.Close()
		oc.Close()
		return nil, fmt.Errorf("oom watch: %w", err)
	}
	go func() {
		defer oc.Close()
		var buf [8]byte
		for {
			if _, err := ev.Read(buf[:]); err != nil {
				return
			}
			// The eventfd also fires when the cgroup is removed.
			if _, err := os.Stat(control); err != nil {
				ev.Close()
				return
			}
			onOOM()
		}
	}()
	return func() { ev.Close() }, nil
}

// watchMemoryEvents watches a cgroup v2 memory.events file.
func watchMemoryEvents(path string, onOOM func()) (func(), error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("oom watch: inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("oom watch %s: %w", path, err)
	}
	in := os.NewFile(uintptr(fd), "oom-inotify")
	last := oomKillCount(path)
	go func() {
		buf := make([]byte, 4*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := in.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if raw.Mask&unix.IN_IGNORED != 0 { // the file is gone
					in.Close()
					return
				}
				off += unix.SizeofInotifyEvent + int(raw.Len)
			}
			if v := oomKillCount(path); v > last {
				last = v
				onOOM()
			}
		}
	}()
	return func() { in.Close() }, nil
}

// oomKillCount reads the oom_kill line of a memory.events file.
func oomKillCount(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
