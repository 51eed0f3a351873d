package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// outputDrainTimeout bounds how long an exit waits for the process's
// output to reach its sinks (a grandchild may hold the pipe open).
const outputDrainTimeout = 2 * time.Second

// procIO is the standard streams of one process. It implements runc.IO
// for the runtime command that starts the process: the process inherits
// the child ends of the pipes (or /dev/null), and the shim copies from
// the parent ends into the sinks: the CRI log and the daemon's FIFOs.
type procIO struct {
	cfg     shimapi.IO
	console *consoleSocket // with a terminal, until the master arrives

	// The runtime's (and so the process's) stdio; closed in the shim once
	// the runtime command has started.
	childIn, childOut, childErr *os.File

	mu     sync.Mutex // guards stdin, pty
	stdin  io.WriteCloser
	pty    *os.File
	stdinF *os.File // the stdin FIFO

	log     *criLog
	sinks   map[string][]outputSink // by stream
	readers sync.WaitGroup
	outDone chan struct{} // closed when every reader and sink is done
}

// newProcIO opens the sinks and pipes that cfg asks for. uid and gid own
// the pipes, so that the process can reopen /dev/stdout.
func newProcIO(cfg shimapi.IO, uid, gid int) (_ *procIO, retErr error) {
	p := &procIO{cfg: cfg, sinks: make(map[string][]outputSink), outDone: make(chan struct{})}
	defer func() {
		if retErr != nil {
			p.abort()
		}
	}()
	if cfg.LogPath != "" {
		l, err := openCRILog(cfg.LogPath, cfg.LogLineSize, cfg.OutputBuffer)
		if err != nil {
			return nil, err
		}
		p.log = l
		p.sinks[streamStdout] = append(p.sinks[streamStdout], l)
		p.sinks[streamStderr] = append(p.sinks[streamStderr], l)
	}
	for stream, path := range map[string]string{streamStdout: cfg.Stdout, streamStderr: cfg.Stderr} {
		if path == "" || cfg.Terminal && stream == streamStderr {
			continue
		}
		s, err := openFIFOSink(path, cfg.OutputBuffer)
		if err != nil {
			return nil, err
		}
		p.sinks[stream] = append(p.sinks[stream], s)
	}
	if cfg.Stdin != "" {
		// Non-blocking: the daemon holds a writer open before it asks; if
		// it did not, the process reads EOF rather than the shim hanging.
		f, err := os.OpenFile(cfg.Stdin, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("stdin fifo: %w", err)
		}
		p.stdinF = f
	}
	if cfg.Terminal {
		cs, err := newConsoleSocket()
		if err != nil {
			return nil, err
		}
		p.console = cs
		return p, nil
	}
	var err error
	if p.childIn, p.stdin, err = p.pipeIn(uid, gid); err != nil {
		return nil, err
	}
	if p.childOut, err = p.pipeOut(streamStdout, uid, gid); err != nil {
		return nil, err
	}
	if p.childErr, err = p.pipeOut(streamStderr, uid, gid); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *procIO) pipeIn(uid, gid int) (*os.File, io.WriteCloser, error) {
	if p.stdinF == nil {
		f, err := os.Open(os.DevNull)
		return f, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	_ = r.Chown(uid, gid)
	return r, w, nil
}

// pipeOut returns the child end of a pipe whose output goes to the sinks
// of stream, or /dev/null when there are none.
func (p *procIO) pipeOut(stream string, uid, gid int) (*os.File, error) {
	if len(p.sinks[stream]) == 0 {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_ = w.Chown(uid, gid)
	p.readers.Add(1)
	go p.copyOut(stream, r)
	return w, nil
}

func (p *procIO) copyOut(stream string, r *os.File) {
	defer p.readers.Done()
	defer r.Close()
	buf := make([]byte, 8<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			for _, s := range p.sinks[stream] {
				s.push(stream, buf[:n], now)
			}
		}
		if err != nil {
			// EOF, or EIO from a terminal whose last user is gone.
			break
		}
	}
	for _, s := range p.sinks[stream] {
		s.endStream(stream)
	}
}

// Set implements runc.IO.
func (p *procIO) Set(cmd *exec.Cmd) {
	if p.console != nil {
		// With a terminal the runtime's own stdio carries nothing of the
		// process: keep it off the sinks, discard it.
		return
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.childIn, p.childOut, p.childErr
}

// CloseAfterStart implements runc.StartCloser: the process holds its ends.
func (p *procIO) CloseAfterStart() error {
	for _, f := range []*os.File{p.childIn, p.childOut, p.childErr} {
		if f != nil {
			f.Close()
		}
	}
	p.childIn, p.childOut, p.childErr = nil, nil, nil
	return nil
}

// Stdin, Stdout, Stderr implement runc.IO; the shim does not use them.
func (p *procIO) Stdin() io.WriteCloser { return nil }
func (p *procIO) Stdout() io.ReadCloser { return nil }
func (p *procIO) Stderr() io.ReadCloser { return nil }
func (p *procIO) Close() error          { p.abort(); return nil }

// started finishes the IO once the runtime has made the process: the
// terminal master is received and copied, stdin starts flowing.
func (p *procIO) started(ctx context.Context) error {
	p.CloseAfterStart()
	if p.console != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		master, err := p.console.receive(ctx)
		p.console.Close()
		p.console = nil
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.pty, p.stdin = master, master
		p.mu.Unlock()
		p.readers.Add(1)
		go p.copyOut(streamStdout, master)
	}
	if p.stdinF != nil && p.stdin != nil {
		go p.copyIn()
	}
	go func() {
		p.readers.Wait()
		p.closeSinks()
		close(p.outDone)
	}()
	return nil
}

func (p *procIO) closeSinks() {
	for _, list := range p.sinks {
		for _, s := range list {
			if s != p.log {
				s.close()
			}
		}
	}
	if p.log != nil {
		p.log.close()
	}
}

func (p *procIO) copyIn() {
	buf := make([]byte, 4<<10)
	_, _ = io.CopyBuffer(stdinWriter{p}, p.stdinF, buf)
	p.closeStdin()
}

// stdinWriter writes to the current stdin, which CloseStdin may close.
type stdinWriter struct{ p *procIO }

func (w stdinWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	in := w.p.stdin
	w.p.mu.Unlock()
	if in == nil {
		return 0, os.ErrClosed
	}
	return in.Write(b)
}

// closeStdin closes the process's standard input (a pipe: the process
// reads EOF) and stops copying from the FIFO. A terminal stays open: it
// is also the process's output.
func (p *procIO) closeStdin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin != nil && p.pty == nil {
		p.stdin.Close()
	}
	p.stdin = nil
	if p.stdinF != nil {
		p.stdinF.Close()
	}
}

func (p *procIO) resize(width, height uint16) error {
	p.mu.Lock()
	pty := p.pty
	p.mu.Unlock()
	if pty == nil {
		return errors.New("no terminal")
	}
	return resizeTerminal(pty, width, height)
}

func (p *procIO) reopenLog() error {
	if p.log == nil {
		return errors.New("no log file")
	}
	return p.log.reopen()
}

// waitOutput waits, for a bounded time, until the process's output has
// reached its sinks.
func (p *procIO) waitOutput() {
	select {
	case <-p.outDone:
	case <-time.After(outputDrainTimeout):
	}
}

// closeAll is the end of the process's IO: the terminal master and stdin
// are closed, which ends the copies still running.
func (p *procIO) closeAll() {
	p.closeStdin()
	p.mu.Lock()
	if p.pty != nil {
		p.pty.Close()
	}
	p.mu.Unlock()
}

// abort undoes a process's IO that never started.
func (p *procIO) abort() {
	p.CloseAfterStart()
	if p.console != nil {
		p.console.Close()
	}
	p.closeAll()
	go func() {
		p.readers.Wait()
		p.closeSinks()
	}()
}
