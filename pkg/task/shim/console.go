package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// consoleSocket receives the pseudo-terminal master the runtime sends
// (--console-socket). It is received here rather than with go-runc's
// console package so that the master is made non-blocking and read
// through Go's poller instead of pinning a thread per terminal.
type consoleSocket struct {
	dir string
	l   *net.UnixListener
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "cri-runtime-pty")
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{dir: dir, l: l}, nil
}

// Path implements runc.ConsoleSocket.
func (s *consoleSocket) Path() string { return filepath.Join(s.dir, "s") }

func (s *consoleSocket) Close() {
	s.l.Close()
	os.RemoveAll(s.dir)
}

// receive accepts the runtime's connection and returns the master it sent.
func (s *consoleSocket) receive(ctx context.Context) (*os.File, error) {
	stop := context.AfterFunc(ctx, func() { s.l.Close() })
	defer stop()
	conn, err := s.l.AcceptUnix()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	oob := make([]byte, unix.CmsgSpace(4))
	buf := make([]byte, 4096)
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("console socket: no terminal received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("console socket: no terminal received")
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// resizeTerminal sets the window size of the terminal whose master is f.
func resizeTerminal(f *os.File, width, height uint16) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
	})
	if err != nil {
		return err
	}
	return ioctlErr
}
