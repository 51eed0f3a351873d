package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	api "github.com/cri-runtime/cri-runtime/api/services/tasks/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// Tasks returns the tasks service.
func (c *Client) Tasks() *TaskService { return &TaskService{client: api.NewTasksClient(c.conn)} }

// TaskService drives the tasks of container records: their init processes
// and exec processes, held by the daemon's shims.
type TaskService struct {
	client api.TasksClient
}

// Exit is how a process ended.
type Exit struct {
	// Status is the exit code, or 128 + the signal that killed it.
	Status uint32    `json:"status"`
	At     time.Time `json:"at"`
	// Reason is "", OOMKilled or ShimGone.
	Reason string `json:"reason,omitempty"`
}

// Process is the state of a task or exec process.
type Process struct {
	ContainerID string `json:"containerID"`
	ExecID      string `json:"execID,omitempty"`
	Group       string `json:"group"`
	Pid         uint32 `json:"pid"`
	// Status is created, running, paused or stopped.
	Status   string `json:"status"`
	Exit     *Exit  `json:"exit,omitempty"`
	Terminal bool   `json:"terminal,omitempty"`
}

// Streams are the standard streams of a process relayed by Attach; nil
// for one not relayed.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// CreateTaskOpts describe the task of a container.
type CreateTaskOpts struct {
	// Group holds the task; "" is the container's (its label, sandbox or
	// ID).
	Group string
	// Stdin, Stdout, Stderr: the streams Attach will relay.
	Stdin, Stdout, Stderr bool
	// Checkpoint is a CRIU image directory to restore from at Start.
	Checkpoint string
}

// Create creates the task of container id and returns its state and its
// log file ("" for none).
func (s *TaskService) Create(ctx context.Context, id string, opts CreateTaskOpts) (Process, string, error) {
	resp, err := s.client.Create(ctx, &api.CreateTaskRequest{
		ContainerId: id, Group: opts.Group, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr,
		Checkpoint: opts.Checkpoint,
	})
	if err != nil {
		return Process{}, "", err
	}
	return processFromProto(resp.GetProcess()), resp.GetLogPath(), nil
}

// Start starts the task id, or its exec process execID, and returns its pid.
func (s *TaskService) Start(ctx context.Context, id, execID string) (uint32, error) {
	resp, err := s.client.Start(ctx, &api.StartRequest{ContainerId: id, ExecId: execID})
	if err != nil {
		return 0, err
	}
	return resp.GetPid(), nil
}

// Get returns the state of the task id, or of its exec process execID.
func (s *TaskService) Get(ctx context.Context, id, execID string) (Process, error) {
	resp, err := s.client.Get(ctx, &api.GetRequest{ContainerId: id, ExecId: execID})
	if err != nil {
		return Process{}, err
	}
	return processFromProto(resp.GetProcess()), nil
}

// List returns the tasks of the namespace.
func (s *TaskService) List(ctx context.Context) ([]Process, error) {
	resp, err := s.client.List(ctx, &api.ListTasksRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]Process, 0, len(resp.GetTasks()))
	for _, p := range resp.GetTasks() {
		out = append(out, processFromProto(p))
	}
	return out, nil
}

// KillOpts aim a Kill: at an exec process, at every process of the
// container (All) or at one of its processes (Pid).
type KillOpts struct {
	ExecID string
	All    bool
	Pid    uint32
}

// Kill signals the task id, or what opts say.
func (s *TaskService) Kill(ctx context.Context, id string, sig syscall.Signal, opts KillOpts) error {
	_, err := s.client.Kill(ctx, &api.KillRequest{ContainerId: id, ExecId: opts.ExecID, Signal: uint32(sig), All: opts.All, Pid: opts.Pid})
	return err
}

// Pause freezes the task id.
func (s *TaskService) Pause(ctx context.Context, id string) error {
	_, err := s.client.Pause(ctx, &api.PauseRequest{ContainerId: id})
	return err
}

// Resume thaws the task id.
func (s *TaskService) Resume(ctx context.Context, id string) error {
	_, err := s.client.Resume(ctx, &api.ResumeRequest{ContainerId: id})
	return err
}

// ProcessInfo is one process of a container.
type ProcessInfo struct {
	Pid    uint32 `json:"pid"`
	ExecID string `json:"execID,omitempty"`
}

// Pids lists the processes of the task id.
func (s *TaskService) Pids(ctx context.Context, id string) ([]ProcessInfo, error) {
	resp, err := s.client.ListPids(ctx, &api.ListPidsRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	out := make([]ProcessInfo, 0, len(resp.GetProcesses()))
	for _, p := range resp.GetProcesses() {
		out = append(out, ProcessInfo{Pid: p.GetPid(), ExecID: p.GetExecId()})
	}
	return out, nil
}

// ExecOpts describe an exec process: the container's process with these
// args, terminal, extra env and cwd; Stdin, Stdout, Stderr are the streams
// Attach will relay.
type ExecOpts struct {
	Args                  []string
	Env                   []string
	Cwd                   string
	Terminal              bool
	Stdin, Stdout, Stderr bool
	// Width and Height, when not 0, size the terminal from its start.
	Width, Height uint16
}

// Exec adds the process execID to the running task id; Start runs it.
func (s *TaskService) Exec(ctx context.Context, id, execID string, opts ExecOpts) error {
	_, err := s.client.Exec(ctx, &api.ExecRequest{
		ContainerId: id, ExecId: execID, Args: opts.Args, Env: opts.Env, Cwd: opts.Cwd,
		Terminal: opts.Terminal, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr,
		Width: uint32(opts.Width), Height: uint32(opts.Height),
	})
	return err
}

// Resize sets the window size of the terminal of a process.
func (s *TaskService) Resize(ctx context.Context, id, execID string, width, height uint16) error {
	_, err := s.client.ResizePty(ctx, &api.ResizePtyRequest{ContainerId: id, ExecId: execID, Width: uint32(width), Height: uint32(height)})
	return err
}

// CloseStdin closes the stdin of a process.
func (s *TaskService) CloseStdin(ctx context.Context, id, execID string) error {
	_, err := s.client.CloseIO(ctx, &api.CloseIORequest{ContainerId: id, ExecId: execID})
	return err
}

// Wait waits for a process to exit.
func (s *TaskService) Wait(ctx context.Context, id, execID string) (Exit, error) {
	resp, err := s.client.Wait(ctx, &api.WaitRequest{ContainerId: id, ExecId: execID})
	if err != nil {
		return Exit{}, err
	}
	return exitFromProto(resp.GetExit()), nil
}

// Delete removes the stopped task id (its record stays), or its exec
// process execID, and returns its exit.
func (s *TaskService) Delete(ctx context.Context, id, execID string) (Exit, error) {
	resp, err := s.client.Delete(ctx, &api.DeleteRequest{ContainerId: id, ExecId: execID})
	if err != nil {
		return Exit{}, err
	}
	return exitFromProto(resp.GetExit()), nil
}

// Metrics are a container's cgroup statistics (see the proto for units).
type Metrics struct {
	Time             time.Time `json:"time"`
	CPUUsageNanos    uint64    `json:"cpuUsageNanos"`
	CPUUserNanos     uint64    `json:"cpuUserNanos"`
	CPUSystemNanos   uint64    `json:"cpuSystemNanos"`
	MemoryUsage      uint64    `json:"memoryUsage"`
	MemoryWorkingSet uint64    `json:"memoryWorkingSet"`
	MemoryLimit      uint64    `json:"memoryLimit"`
	MemoryRSS        uint64    `json:"memoryRSS"`
	MemoryCache      uint64    `json:"memoryCache"`
	OOMKills         uint64    `json:"oomKills"`
	PidsCurrent      uint64    `json:"pidsCurrent"`
	PidsLimit        uint64    `json:"pidsLimit"`
	IOReadBytes      uint64    `json:"ioReadBytes"`
	IOWriteBytes     uint64    `json:"ioWriteBytes"`
	IOReadOps        uint64    `json:"ioReadOps"`
	IOWriteOps       uint64    `json:"ioWriteOps"`
}

// Metrics returns the cgroup statistics of the running or paused task id.
func (s *TaskService) Metrics(ctx context.Context, id string) (Metrics, error) {
	resp, err := s.client.Metrics(ctx, &api.MetricsRequest{ContainerId: id})
	if err != nil {
		return Metrics{}, err
	}
	m := resp.GetMetrics()
	return Metrics{
		Time:          convert.Time(m.GetTimestamp()),
		CPUUsageNanos: m.GetCpuUsageNanos(), CPUUserNanos: m.GetCpuUserNanos(), CPUSystemNanos: m.GetCpuSystemNanos(),
		MemoryUsage: m.GetMemoryUsage(), MemoryWorkingSet: m.GetMemoryWorkingSet(), MemoryLimit: m.GetMemoryLimit(),
		MemoryRSS: m.GetMemoryRss(), MemoryCache: m.GetMemoryCache(), OOMKills: m.GetOomKills(),
		PidsCurrent: m.GetPidsCurrent(), PidsLimit: m.GetPidsLimit(),
		IOReadBytes: m.GetIoReadBytes(), IOWriteBytes: m.GetIoWriteBytes(), IOReadOps: m.GetIoReadOps(), IOWriteOps: m.GetIoWriteOps(),
	}, nil
}

// Checkpoint checkpoints the running task id with CRIU into imagePath;
// with exit the task stops after it.
func (s *TaskService) Checkpoint(ctx context.Context, id, imagePath, workPath string, exit bool) error {
	_, err := s.client.Checkpoint(ctx, &api.CheckpointRequest{ContainerId: id, ImagePath: imagePath, WorkPath: workPath, Exit: exit})
	return err
}

// Attachment is an attached stream of a process.
type Attachment struct {
	done chan struct{}
	exit Exit
	err  error
}

// Wait waits until the process has exited and its output is written to
// the Streams' writers, and returns its exit.
func (a *Attachment) Wait() (Exit, error) {
	<-a.done
	return a.exit, a.err
}

// Attach relays the streams of process execID of task id (made with
// them). When Attach returns, output is relayed: start the process then.
// Stdin is read until EOF, which closes the process's stdin; a Read that
// blocks keeps its goroutine until it returns. Ending ctx detaches.
func (s *TaskService) Attach(ctx context.Context, id, execID string, streams Streams) (*Attachment, error) {
	stream, err := s.client.Attach(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&api.AttachRequest{ContainerId: id, ExecId: execID}); err != nil {
		_, rerr := stream.Recv()
		return nil, attachErr(rerr, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if !first.GetAttached() {
		return nil, fmt.Errorf("attach to %q: the daemon did not say it attached: %w", id, errdefs.ErrInternal)
	}
	a := &Attachment{done: make(chan struct{})}
	if streams.Stdin != nil {
		go pumpStdin(stream, streams.Stdin)
	}
	go func() {
		defer close(a.done)
		a.exit, a.err = relayOutput(stream, streams)
	}()
	return a, nil
}

// attachErr is the error of a stream whose Send failed: the stream's own
// status, which Recv reports.
func attachErr(recvErr, sendErr error) error {
	if recvErr != nil && !errors.Is(recvErr, io.EOF) {
		return recvErr
	}
	return sendErr
}

// pumpStdin sends r on the stream until EOF, then closes the process's
// stdin.
func pumpStdin(stream api.Tasks_AttachClient, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if stream.Send(&api.AttachRequest{Stdin: append([]byte(nil), buf[:n]...)}) != nil {
				return
			}
		}
		if err != nil {
			_ = stream.Send(&api.AttachRequest{CloseStdin: true})
			return
		}
	}
}

// relayOutput writes the output of the stream to streams until its exit.
func relayOutput(stream api.Tasks_AttachClient, streams Streams) (Exit, error) {
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("attach: the stream ended before the exit: %w", errdefs.ErrUnavailable)
			}
			return Exit{}, err
		}
		if b := resp.GetStdout(); len(b) > 0 && streams.Stdout != nil {
			_, _ = streams.Stdout.Write(b)
		}
		if b := resp.GetStderr(); len(b) > 0 && streams.Stderr != nil {
			_, _ = streams.Stderr.Write(b)
		}
		if e := resp.GetExit(); e != nil {
			return exitFromProto(e), nil
		}
	}
}

func processFromProto(p *api.Process) Process {
	out := Process{
		ContainerID: p.GetContainerId(), ExecID: p.GetExecId(), Group: p.GetGroup(), Pid: p.GetPid(),
		Status: p.GetStatus(), Terminal: p.GetTerminal(),
	}
	if p.GetExit() != nil {
		e := exitFromProto(p.GetExit())
		out.Exit = &e
	}
	return out
}

func exitFromProto(e *api.Exit) Exit {
	return Exit{Status: e.GetStatus(), At: convert.Time(e.GetExitedAt()), Reason: e.GetReason()}
}
