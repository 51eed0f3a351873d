package task

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// copyDrainTimeout bounds how long Wait waits, after the exit, for the
// output to be copied to the caller's writers.
const copyDrainTimeout = 2 * time.Second

// IO says where a process's standard streams go.
type IO struct {
	// Terminal gives the process a pseudo-terminal: one output stream,
	// copied to Stdout.
	Terminal bool
	// Stdin is copied into the process; its EOF closes the process's stdin.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output. They are written by
	// the daemon, which reads FIFOs the shim fills: they see output only
	// while this daemon runs (the log file is what outlives it).
	Stdout, Stderr io.Writer
	// LogPath is the CRI log file the shim writes stdout and stderr to.
	LogPath string
	// LogLineSize and OutputBuffer: see shimapi.IO (0 for the defaults,
	// 16 KiB lines and 256 KiB per sink).
	LogLineSize  int
	OutputBuffer int
}

// fifoSet is the daemon's end of a process's FIFOs and the goroutines
// copying between them and the caller's reader and writers.
type fifoSet struct {
	dir                   string
	stdin, stdout, stderr string
	in                    *os.File // our writing end of stdin
	outs                  []output
	cfg                   IO
	copying               atomic.Int32  // output copies not ended
	done                  chan struct{} // closed when the copies of output end
}

// output is our reading end of an output FIFO and where it goes.
type output struct {
	f *os.File
	w io.Writer
}

type fifoKey struct{ ns, id, execID string }

// newFIFOs makes the FIFOs io asks for and opens our ends so that the
// shim's opens do not wait: stdin read-write (the shim's read end sees
// EOF when we close it), outputs read-only non-blocking. nil when io
// needs none.
func (m *Manager) newFIFOs(ns, id, execID string, cfg IO) (_ *fifoSet, retErr error) {
	f := &fifoSet{cfg: cfg, done: make(chan struct{})}
	if cfg.Stdin == nil && cfg.Stdout == nil && cfg.Stderr == nil {
		close(f.done)
		return f, nil
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	f.dir = filepath.Join(m.cfg.StateDir, "fifo", fmt.Sprintf("%s-%s-%s-%s", ns, id, execID, hex.EncodeToString(rnd[:])))
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return nil, fmt.Errorf("fifo directory: %w", err)
	}
	defer func() {
		if retErr != nil {
			f.close()
		}
	}()
	mk := func(name string, flag int) (string, *os.File, error) {
		p := filepath.Join(f.dir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return "", nil, fmt.Errorf("fifo %s: %w", p, err)
		}
		fh, err := os.OpenFile(p, flag, 0)
		if err != nil {
			return "", nil, fmt.Errorf("fifo %s: %w", p, err)
		}
		return p, fh, nil
	}
	var err error
	if cfg.Stdin != nil {
		if f.stdin, f.in, err = mk("stdin", os.O_RDWR); err != nil {
			return nil, err
		}
	}
	if cfg.Stdout != nil {
		var fh *os.File
		if f.stdout, fh, err = mk("stdout", os.O_RDONLY|syscall.O_NONBLOCK); err != nil {
			return nil, err
		}
		f.outs = append(f.outs, output{fh, cfg.Stdout})
	}
	if cfg.Stderr != nil && !cfg.Terminal {
		var fh *os.File
		if f.stderr, fh, err = mk("stderr", os.O_RDONLY|syscall.O_NONBLOCK); err != nil {
			return nil, err
		}
		f.outs = append(f.outs, output{fh, cfg.Stderr})
	}
	return f, nil
}

// request is the IO of the shim request.
func (f *fifoSet) request(cfg IO) shimapi.IO {
	return shimapi.IO{
		Terminal: cfg.Terminal, Stdin: f.stdin, Stdout: f.stdout, Stderr: f.stderr,
		LogPath: cfg.LogPath, LogLineSize: cfg.LogLineSize, OutputBuffer: cfg.OutputBuffer,
	}
}

// started begins the copies once the shim holds its ends: before, a read
// of an output FIFO would see EOF.
func (f *fifoSet) started() {
	if f.dir == "" {
		return
	}
	if f.in != nil {
		go func() {
			_, _ = io.Copy(f.in, f.cfg.Stdin)
			f.in.Close()
		}()
	}
	if len(f.outs) == 0 {
		close(f.done)
		return
	}
	f.copying.Store(int32(len(f.outs)))
	for _, o := range f.outs {
		go func() {
			copyOutput(o.w, o.f)
			o.f.Close()
			if f.copying.Add(-1) == 0 {
				close(f.done)
			}
		}()
	}
}

// outputBufs are the buffers of the output copies. A copy takes one only
// once its FIFO has data and gives it back before it waits again: a
// container's output is mostly idle, and a buffer held by each waiting
// copy (io.Copy's 32 KiB) was 64 KiB of live heap per container, twice
// that with the GC's headroom.
var outputBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyOutput copies the output FIFO f to w until EOF, an error of
// either, or f is closed, as io.Copy does.
func copyOutput(w io.Writer, f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		_, _ = io.Copy(w, f)
		return
	}
	for {
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			buf = outputBufs.Get().(*[]byte)
			for n, rerr = syscall.Read(int(fd), *buf); rerr == syscall.EINTR; {
				n, rerr = syscall.Read(int(fd), *buf)
			}
			if rerr == syscall.EAGAIN {
				outputBufs.Put(buf)
				buf = nil
				return false // the netpoller waits for data
			}
			return true
		})
		var werr error
		if buf != nil {
			if n > 0 {
				var m int
				if m, werr = w.Write((*buf)[:n]); werr == nil && m < n {
					werr = io.ErrShortWrite
				}
			}
			outputBufs.Put(buf)
		}
		if err != nil || rerr != nil || werr != nil || n <= 0 {
			return // closed, failed, or EOF: the shim closed its end
		}
	}
}

// wait waits, for a bounded time, for the output copies to end.
func (f *fifoSet) wait() {
	select {
	case <-f.done:
	case <-time.After(copyDrainTimeout):
	}
}

// close ends the copies and removes the FIFOs.
func (f *fifoSet) close() {
	if f.in != nil {
		f.in.Close()
	}
	for _, o := range f.outs {
		o.f.Close()
	}
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

func (m *Manager) setFIFOs(ns, id, execID string, f *fifoSet) {
	m.fifoMu.Lock()
	m.fifos[fifoKey{ns, id, execID}] = f
	m.fifoMu.Unlock()
}

func (m *Manager) getFIFOs(ns, id, execID string) *fifoSet {
	m.fifoMu.Lock()
	defer m.fifoMu.Unlock()
	return m.fifos[fifoKey{ns, id, execID}]
}

// dropFIFOs closes the FIFOs of an exec process, or of a container and
// all its exec processes when execID is not given.
func (m *Manager) dropFIFOs(ns, id string, execID ...string) {
	m.fifoMu.Lock()
	var drop []*fifoSet
	for k, f := range m.fifos {
		if k.ns == ns && k.id == id && (len(execID) == 0 || k.execID == execID[0]) {
			drop = append(drop, f)
			delete(m.fifos, k)
		}
	}
	m.fifoMu.Unlock()
	for _, f := range drop {
		f.close()
	}
}

// LimitedBuffer keeps the first Max bytes written to it and counts the
// rest: output captured with a cap (ExecSync).
type LimitedBuffer struct {
	Max int

	mu        sync.Mutex // guards the fields below
	buf       []byte
	truncated int64
}

// Write keeps what fits and never fails, so the copy goes on to EOF.
func (b *LimitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.Max - len(b.buf)
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	b.truncated += int64(len(p) - max(room, 0))
	return len(p), nil
}

// Bytes returns what was kept.
func (b *LimitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// Truncated returns how many bytes did not fit.
func (b *LimitedBuffer) Truncated() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.truncated
}
