package shimapi

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// MaxFrame is the largest frame either end accepts, in bytes.
const MaxFrame = 16 << 20

// frame is one message on the wire: a request (Method set), the
// cancellation of a request (Cancel), or a response (neither). A frame is
// a 4-byte big-endian length followed by that many bytes of JSON.
type frame struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method,omitempty"`
	Cancel bool            `json:"cancel,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

// frameWriter writes whole frames, one at a time, with no buffer of its
// own: a connection is idle most of its life, and a buffer per connection
// (4 KiB) was held for all of it.
type frameWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: w}
}

func (fw *frameWriter) write(f *frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode frame: %w", errdefs.ErrInternal)
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("frame of %d bytes, more than %d: %w", len(b), MaxFrame, errdefs.ErrResourceExhausted)
	}
	h := binary.BigEndian.AppendUint32(make([]byte, 0, 4), uint32(len(b)))
	fw.mu.Lock()
	defer fw.mu.Unlock()
	// One writev on a socket.
	bufs := net.Buffers{h, b}
	_, err = bufs.WriteTo(fw.w)
	return err
}

// readFrame reads one frame from r. The client reads its connection
// directly (two reads a frame, no buffer held while it waits), the server
// through a bufio.Reader.
func readFrame(r io.Reader) (*frame, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("frame of %d bytes, more than %d: %w", n, MaxFrame, errdefs.ErrResourceExhausted)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	f := new(frame)
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("decode frame: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// wireError carries an error's class and text across the socket.
type wireError struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

// classes maps the errdefs classes to their names on the wire.
var classes = []struct {
	name string
	err  error
}{
	{"NotFound", errdefs.ErrNotFound},
	{"AlreadyExists", errdefs.ErrAlreadyExists},
	{"InvalidArgument", errdefs.ErrInvalidArgument},
	{"FailedPrecondition", errdefs.ErrFailedPrecondition},
	{"ResourceExhausted", errdefs.ErrResourceExhausted},
	{"Unavailable", errdefs.ErrUnavailable},
	{"NotImplemented", errdefs.ErrNotImplemented},
	{"Conflict", errdefs.ErrConflict},
	{"Internal", errdefs.ErrInternal},
	{"Canceled", context.Canceled},
	{"DeadlineExceeded", context.DeadlineExceeded},
	{"Unknown", errdefs.ErrUnknown},
}

func encodeError(err error) *wireError {
	w := &wireError{Class: "Unknown", Message: err.Error()}
	for _, c := range classes {
		if errors.Is(err, c.err) || c.err == errdefs.ErrResourceExhausted && errdefs.IsResourceExhausted(err) {
			w.Class = c.name
			break
		}
	}
	return w
}

// RemoteError is an error returned by the other end: its text as the
// other end wrote it, and its class, which errors.Is matches.
type RemoteError struct {
	Message string
	class   error
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the errdefs class (or context error) of the error.
func (e *RemoteError) Unwrap() error { return e.class }

func decodeError(w *wireError) error {
	class := errdefs.ErrUnknown
	for _, c := range classes {
		if c.name == w.Class {
			class = c.err
			break
		}
	}
	return &RemoteError{Message: w.Message, class: class}
}
