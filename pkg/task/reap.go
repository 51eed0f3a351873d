package task

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// reapShim reaps the shim process cmd started, should it exit while the
// daemon runs, and holds no thread while it waits. cmd.Wait blocks in
// waitid: a goroutine there holds an OS thread (16 KiB of g0 stack and
// 32 KiB of signal stack in the runtime's accounting, and a kernel
// thread) for the shim's whole life, one per pod. Instead the netpoller
// waits for pidfd to become readable, which it does once the process has
// exited; cmd.Wait then returns at once. pidfd is the one
// SysProcAttr.PidFD received (-1 on a kernel without pidfds: then a
// goroutine waits in cmd.Wait); reapShim closes it.
func reapShim(cmd *exec.Cmd, pidfd int) {
	var rc syscall.RawConn
	if pidfd >= 0 {
		// Non-blocking first, so that NewFile registers it with the
		// netpoller.
		if err := syscall.SetNonblock(pidfd, true); err != nil {
			syscall.Close(pidfd)
			pidfd = -1
		}
	}
	var f *os.File
	if pidfd >= 0 {
		f = os.NewFile(uintptr(pidfd), "pidfd")
		var err error
		if rc, err = f.SyscallConn(); err != nil {
			f.Close()
			rc = nil
		}
	}
	go func() {
		if rc != nil {
			_ = rc.Read(func(fd uintptr) bool { return exited(int(fd)) })
			f.Close()
		}
		_ = cmd.Wait()
	}()
}

// exited reports whether the process of pidfd has exited: its pidfd is
// readable then. An error ends the wait too (cmd.Wait then blocks).
func exited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}
