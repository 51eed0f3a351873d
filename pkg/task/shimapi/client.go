package shimapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Client is one connection to a shim. Calls may be made concurrently; each
// honours its ctx: on cancellation the shim is told to cancel the request
// and the call returns ctx.Err() at once.
type Client struct {
	conn net.Conn
	w    *frameWriter
	done chan struct{} // closed when the connection is gone

	mu      sync.Mutex // guards the fields below
	next    uint64
	pending map[uint64]chan *frame
	err     error // why the connection is gone, once done is closed
}

// Dial connects to the shim listening at path. A socket nobody listens on
// (the shim is gone) is Unavailable.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("shim socket %s: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	return NewClient(conn), nil
}

// NewClient runs the protocol over conn.
func NewClient(conn net.Conn) *Client {
	c := &Client{
		conn:    conn,
		w:       newFrameWriter(conn),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan *frame),
	}
	go c.readLoop()
	return c
}

// Done is closed when the connection is gone: Close was called or the
// shim went away.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection; pending calls return Unavailable.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *Client) readLoop() {
	var err error
	for {
		var f *frame
		if f, err = readFrame(c.conn); err != nil {
			break
		}
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
	c.conn.Close()
	c.mu.Lock()
	c.err = fmt.Errorf("shim connection closed: %v: %w", err, errdefs.ErrUnavailable)
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
}

// Call sends method with req and decodes the response into resp.
func (c *Client) Call(ctx context.Context, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %v: %w", method, err, errdefs.ErrInvalidArgument)
	}
	ch := make(chan *frame, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.w.write(&frame{ID: id, Method: method, Body: body}); err != nil {
		c.forget(id)
		return fmt.Errorf("%s: send: %v: %w", method, err, errdefs.ErrUnavailable)
	}
	select {
	case f := <-ch:
		if f.Error != nil {
			return decodeError(f.Error)
		}
		if resp != nil && len(f.Body) > 0 {
			if err := json.Unmarshal(f.Body, resp); err != nil {
				return fmt.Errorf("%s: decode response: %v: %w", method, err, errdefs.ErrInternal)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		_ = c.w.write(&frame{ID: id, Cancel: true})
		return ctx.Err()
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// Info describes the shim.
func (c *Client) Info(ctx context.Context) (*InfoResponse, error) {
	var r InfoResponse
	return &r, c.Call(ctx, MethodInfo, &Empty{}, &r)
}

// Create creates a container.
func (c *Client) Create(ctx context.Context, req *CreateRequest) (*CreateResponse, error) {
	var r CreateResponse
	return &r, c.Call(ctx, MethodCreate, req, &r)
}

// Start starts the init or exec process named by req.
func (c *Client) Start(ctx context.Context, req *ProcessRequest) (uint32, error) {
	var r PidResponse
	err := c.Call(ctx, MethodStart, req, &r)
	return r.Pid, err
}

// Exec adds an exec process to a container.
func (c *Client) Exec(ctx context.Context, req *ExecRequest) error {
	return c.Call(ctx, MethodExec, req, nil)
}

// Kill signals a process, or all processes of a container.
func (c *Client) Kill(ctx context.Context, req *KillRequest) error {
	return c.Call(ctx, MethodKill, req, nil)
}

// Pause freezes a container.
func (c *Client) Pause(ctx context.Context, id string) error {
	return c.Call(ctx, MethodPause, &ProcessRequest{ID: id}, nil)
}

// Resume thaws a container.
func (c *Client) Resume(ctx context.Context, id string) error {
	return c.Call(ctx, MethodResume, &ProcessRequest{ID: id}, nil)
}

// Pids lists the processes of a container.
func (c *Client) Pids(ctx context.Context, id string) ([]ProcessInfo, error) {
	var r PidsResponse
	err := c.Call(ctx, MethodPids, &ProcessRequest{ID: id}, &r)
	return r.Processes, err
}

// Update changes the resources of a container.
func (c *Client) Update(ctx context.Context, req *UpdateRequest) error {
	return c.Call(ctx, MethodUpdate, req, nil)
}

// CloseStdin closes the standard input of a process.
func (c *Client) CloseStdin(ctx context.Context, req *ProcessRequest) error {
	return c.Call(ctx, MethodCloseStdin, req, nil)
}

// Resize sets the terminal size of a process.
func (c *Client) Resize(ctx context.Context, req *ResizeRequest) error {
	return c.Call(ctx, MethodResize, req, nil)
}

// Wait blocks until the process exits and returns how.
func (c *Client) Wait(ctx context.Context, req *ProcessRequest) (*ExitResponse, error) {
	var r ExitResponse
	return &r, c.Call(ctx, MethodWait, req, &r)
}

// Delete removes a stopped (or never started) process.
func (c *Client) Delete(ctx context.Context, req *ProcessRequest) (*ExitResponse, error) {
	var r ExitResponse
	return &r, c.Call(ctx, MethodDelete, req, &r)
}

// Checkpoint checkpoints a container with CRIU.
func (c *Client) Checkpoint(ctx context.Context, req *CheckpointRequest) error {
	return c.Call(ctx, MethodCheckpoint, req, nil)
}

// State returns a snapshot of the processes of one container, or of all.
func (c *Client) State(ctx context.Context, id string) (*StateResponse, error) {
	var r StateResponse
	return &r, c.Call(ctx, MethodState, &StateRequest{ID: id}, &r)
}

// Events waits for the events after sequence number after.
func (c *Client) Events(ctx context.Context, after uint64) (*EventsResponse, error) {
	var r EventsResponse
	return &r, c.Call(ctx, MethodEvents, &EventsRequest{After: after}, &r)
}

// ReopenLog reopens a process's CRI log file (after rotation).
func (c *Client) ReopenLog(ctx context.Context, req *ProcessRequest) error {
	return c.Call(ctx, MethodReopenLog, req, nil)
}

// Shutdown asks an empty shim to exit; one that holds containers refuses
// with FailedPrecondition.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.Call(ctx, MethodShutdown, &Empty{}, nil)
}
