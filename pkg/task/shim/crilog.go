package shim

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

const (
	// DefaultLogLineSize is the longest line content written as one CRI
	// log line; a longer line is split into P parts of this size.
	DefaultLogLineSize = 16 << 10
	// DefaultOutputBuffer is how many bytes of output each sink holds for
	// a slow writer before it drops output rather than block the process.
	DefaultOutputBuffer = 256 << 10
	// entryOverhead is what a queued entry counts beyond its bytes.
	entryOverhead = 64
)

// Streams of a process's output, as named in the CRI log format.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// outputSink takes a process's output as it is read. push never blocks: a
// sink queues up to a bounded number of bytes for its writer and drops
// beyond that, counting what it dropped.
type outputSink interface {
	push(stream string, data []byte, at time.Time)
	// endStream says that stream reached EOF.
	endStream(stream string)
	// close writes what is queued (within a bounded time) and stops.
	close()
}

type logLine struct {
	at      time.Time
	stream  string
	partial bool
	data    []byte
}

// criLog writes output to a file in the CRI log format, one line per
// line of output:
//
//	2016-10-06T00:17:09.669794202Z stdout F the line
//
// Lines longer than lineSize are split into parts tagged P, the last one
// F. A line is stamped with the time its end was read. One goroutine
// writes the file; the readers only queue, so a slow disk costs the
// container nothing until the queue is full, and then output is dropped
// and a marker line says how much.
type criLog struct {
	path     string
	lineSize int
	limit    int

	mu       sync.Mutex // guards the fields below
	partial  map[string][]byte
	queue    []logLine
	queued   int // bytes in queue, with entryOverhead per line
	dropped  int // bytes dropped since the last marker
	dropLine int // lines (or parts) dropped since the last marker
	dropFrom string
	closing  bool
	reopens  []chan error
	wake     chan struct{} // signalled when there is work

	done chan struct{} // closed when the writer has stopped
}

// openCRILog opens (appends to, or creates) the log at path and starts its
// writer.
func openCRILog(path string, lineSize, limit int) (*criLog, error) {
	if lineSize <= 0 {
		lineSize = DefaultLogLineSize
	}
	if limit <= 0 {
		limit = DefaultOutputBuffer
	}
	f, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	l := &criLog{
		path: path, lineSize: lineSize, limit: limit,
		partial: make(map[string][]byte), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go l.writer(f)
	return l, nil
}

func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

func (l *criLog) push(stream string, data []byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := l.partial[stream]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			buf = append(buf, data...)
			data = nil
			for len(buf) > l.lineSize {
				l.enqueue(logLine{at, stream, true, bytes.Clone(buf[:l.lineSize])})
				buf = append(buf[:0], buf[l.lineSize:]...)
			}
			break
		}
		line := append(buf, data[:i]...)
		data = data[i+1:]
		for len(line) > l.lineSize {
			l.enqueue(logLine{at, stream, true, bytes.Clone(line[:l.lineSize])})
			line = line[l.lineSize:]
		}
		l.enqueue(logLine{at, stream, false, bytes.Clone(line)})
		buf = buf[:0]
	}
	if len(buf) == 0 {
		delete(l.partial, stream)
	} else {
		l.partial[stream] = buf
	}
}

func (l *criLog) endStream(stream string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if buf := l.partial[stream]; len(buf) > 0 {
		l.enqueue(logLine{time.Now(), stream, false, bytes.Clone(buf)})
	}
	delete(l.partial, stream)
}

// enqueue queues a line, or drops it when the queue is full. Called with
// mu held.
func (l *criLog) enqueue(line logLine) {
	size := len(line.data) + entryOverhead
	if l.queued+size > l.limit {
		if l.dropped == 0 {
			l.dropFrom = line.stream
		}
		l.dropped += len(line.data)
		l.dropLine++
		return
	}
	if l.dropped > 0 {
		// The marker goes where the output went missing; it is small and
		// is not counted against the limit.
		l.queue = append(l.queue, logLine{line.at, l.dropFrom, false, fmt.Appendf(nil,
			"[cri-runtime-shim: %d bytes in %d lines of output dropped: the log writer fell behind]", l.dropped, l.dropLine)})
		l.dropped, l.dropLine = 0, 0
	}
	l.queue = append(l.queue, line)
	l.queued += size
	l.signal()
}

func (l *criLog) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// reopen closes the log file and opens path again: the file was rotated.
func (l *criLog) reopen() error {
	ch := make(chan error, 1)
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return fmt.Errorf("log %s is closed", l.path)
	}
	l.reopens = append(l.reopens, ch)
	l.signal()
	l.mu.Unlock()
	return <-ch
}

func (l *criLog) close() {
	l.mu.Lock()
	for stream, buf := range l.partial {
		if len(buf) > 0 {
			l.enqueue(logLine{time.Now(), stream, false, bytes.Clone(buf)})
		}
	}
	l.partial = map[string][]byte{}
	l.closing = true
	l.signal()
	l.mu.Unlock()
	<-l.done
}

// writer owns the file: it writes queued lines and handles reopens.
func (l *criLog) writer(f *os.File) {
	defer close(l.done)
	var buf []byte // grown by the first lines: an idle log holds none
	for range l.wake {
		l.mu.Lock()
		batch, reopens, closing := l.queue, l.reopens, l.closing
		l.queue, l.reopens, l.queued = nil, nil, 0
		l.mu.Unlock()

		// A write error (a full disk) loses these lines; the container
		// is never made to wait for the disk.
		for i, line := range batch {
			buf = appendCRILine(buf, line)
			if len(buf) >= logWriteSize || i == len(batch)-1 {
				_ = writeWholeLines(f, buf)
				buf = buf[:0]
			}
		}
		for _, ch := range reopens {
			nf, err := openLogFile(l.path)
			if err == nil {
				f.Close()
				f = nf
			}
			ch <- err
		}
		if closing {
			f.Close()
			return
		}
	}
}

// logWriteSize is how many bytes of whole lines the writer gathers per
// write (and keeps, in every shim, for each log that wrote).
const logWriteSize = 8 << 10

// appendCRILine appends line to buf in the CRI format.
func appendCRILine(buf []byte, line logLine) []byte {
	buf = line.at.UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, line.stream...)
	if line.partial {
		buf = append(buf, " P "...)
	} else {
		buf = append(buf, " F "...)
	}
	buf = append(buf, line.data...)
	return append(buf, '\n')
}

// writeWholeLines writes buf, whole lines, to f (opened O_APPEND). A short
// write (ENOSPC, EDQUOT) is cut back to its last whole line, so that a
// reader of the log never meets half a line, only lines missing.
func writeWholeLines(f *os.File, buf []byte) error {
	n, err := f.Write(buf)
	if err == nil {
		return nil
	}
	if cut := n - (bytes.LastIndexByte(buf[:n], '\n') + 1); cut > 0 {
		if st, serr := f.Stat(); serr == nil {
			_ = f.Truncate(st.Size() - int64(cut))
		}
	}
	return err
}
