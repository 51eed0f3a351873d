package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	containersapi "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	api "github.com/cri-runtime/cri-runtime/api/services/tasks/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// registerContainersAndTasks registers the containers and the tasks
// services, which share the locks of a container's lifecycle and the
// relays of its processes.
func registerContainersAndTasks(g *grpc.Server, s *Server) {
	cs := s.newContainersService(&keyLocks{}, &relays{})
	containersapi.RegisterContainersServer(g, cs)
	api.RegisterTasksServer(g, &tasksService{tasks: s.tasks, containers: cs, relays: cs.relays})
}

// tasksService serves api/services/tasks over the task Manager: the tasks
// of container records, and the relays of their streams (tasks_io.go).
type tasksService struct {
	api.UnimplementedTasksServer
	tasks      *task.Manager
	containers *containersService
	relays     *relays // shared with the containers service
}

// Create creates the task of a container record in the shim of its group,
// over the mounts of its snapshot, its output in its log file (label
// LabelLogPath) and, when asked, relayed through Attach.
func (s *tasksService) Create(ctx context.Context, req *api.CreateTaskRequest) (*api.CreateTaskResponse, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetContainerId()
	unlock, err := s.containers.locks.lock(ctx, ns+"/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err := s.containers.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var rootfs []task.Mount
	if c.SnapshotKey != "" {
		sn := s.containers.db.Snapshotter(c.Snapshotter)
		if sn == nil {
			return nil, fmt.Errorf("container %q: snapshotter %q: %w", id, c.Snapshotter, errdefs.ErrNotFound)
		}
		if rootfs, err = sn.Mounts(ctx, c.SnapshotKey); err != nil {
			return nil, fmt.Errorf("container %q: rootfs: %w", id, err)
		}
	}
	var sp specs.Spec
	if err := json.Unmarshal(c.Spec, &sp); err != nil || sp.Process == nil {
		return nil, fmt.Errorf("container %q: no runtime-spec with a process: %w", id, errdefs.ErrFailedPrecondition)
	}
	logPath := c.Labels[LabelLogPath]
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
			return nil, fmt.Errorf("container %q: log directory: %w", id, err)
		}
	}
	r := newRelay(req.GetStdin())
	t, err := s.tasks.Create(ctx, groupOf(c, req.GetGroup()), task.CreateOpts{
		ID: id, Runtime: c.Runtime.Name, Spec: c.Spec, Rootfs: rootfs, Checkpoint: req.GetCheckpoint(),
		IO: r.taskIO(sp.Process.Terminal, req.GetStdout(), req.GetStderr(), logPath),
	})
	if err != nil {
		r.close()
		return nil, err
	}
	if req.GetStdin() || req.GetStdout() || req.GetStderr() {
		s.relays.put(relayKey{ns, id, ""}, r)
	}
	st, err := t.State(ctx)
	if err != nil {
		return nil, err
	}
	return &api.CreateTaskResponse{Process: processToProto(st), LogPath: logPath}, nil
}

// groupOf is the group of container c's task: the request's, else the
// record's label, else its sandbox, else its ID.
func groupOf(c meta.Container, group string) string {
	for _, g := range []string{group, c.Labels[LabelGroup], c.SandboxID} {
		if g != "" {
			return g
		}
	}
	return c.ID
}

// process is a task, or one of its exec processes.
type process interface {
	Start(context.Context) (uint32, error)
	State(context.Context) (task.State, error)
	Wait(context.Context) (task.Exit, error)
	CloseStdin(context.Context) error
	Resize(ctx context.Context, width, height uint16) error
	Delete(context.Context) (task.Exit, error)
}

// process returns the task id, or its exec process execID.
func (s *tasksService) process(ctx context.Context, id, execID string) (*task.Task, process, error) {
	t, err := s.tasks.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if execID == "" {
		return t, t, nil
	}
	p, err := t.LoadProcess(ctx, execID)
	if err != nil {
		return nil, nil, err
	}
	return t, p, nil
}

func (s *tasksService) Start(ctx context.Context, req *api.StartRequest) (*api.StartResponse, error) {
	_, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	pid, err := p.Start(ctx)
	if err != nil {
		return nil, err
	}
	return &api.StartResponse{Pid: pid}, nil
}

func (s *tasksService) Get(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
	_, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	st, err := p.State(ctx)
	if err != nil {
		return nil, err
	}
	return &api.GetResponse{Process: processToProto(st)}, nil
}

func (s *tasksService) List(ctx context.Context, _ *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	list, err := s.tasks.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.ListTasksResponse{Tasks: make([]*api.Process, 0, len(list))}
	for _, st := range list {
		resp.Tasks = append(resp.Tasks, processToProto(st))
	}
	return resp, nil
}

func (s *tasksService) Kill(ctx context.Context, req *api.KillRequest) (*emptypb.Empty, error) {
	sig := req.GetSignal()
	if sig == 0 || sig > 64 {
		return nil, fmt.Errorf("signal %d: %w", sig, errdefs.ErrInvalidArgument)
	}
	t, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	if ep, ok := p.(*task.Process); ok {
		if req.GetAll() || req.GetPid() != 0 {
			return nil, fmt.Errorf("kill of exec %q: all and pid are for the container: %w", req.GetExecId(), errdefs.ErrInvalidArgument)
		}
		return &emptypb.Empty{}, ep.Kill(ctx, syscall.Signal(sig))
	}
	return &emptypb.Empty{}, t.Kill(ctx, syscall.Signal(sig), task.KillOpts{All: req.GetAll(), Pid: req.GetPid()})
}

func (s *tasksService) Pause(ctx context.Context, req *api.PauseRequest) (*emptypb.Empty, error) {
	t, err := s.tasks.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, t.Pause(ctx)
}

func (s *tasksService) Resume(ctx context.Context, req *api.ResumeRequest) (*emptypb.Empty, error) {
	t, err := s.tasks.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, t.Resume(ctx)
}

func (s *tasksService) ListPids(ctx context.Context, req *api.ListPidsRequest) (*api.ListPidsResponse, error) {
	t, err := s.tasks.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	pids, err := t.Pids(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.ListPidsResponse{Processes: make([]*api.ProcessInfo, 0, len(pids))}
	for _, p := range pids {
		resp.Processes = append(resp.Processes, &api.ProcessInfo{Pid: p.Pid, ExecId: p.ExecID})
	}
	return resp, nil
}

// Exec adds a process to the running container: the container's process
// (user, capabilities, env, cwd...) with the request's args, terminal,
// extra env and cwd.
func (s *tasksService) Exec(ctx context.Context, req *api.ExecRequest) (*emptypb.Empty, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	id, execID := req.GetContainerId(), req.GetExecId()
	if len(req.GetArgs()) == 0 {
		return nil, fmt.Errorf("exec %q: no args: %w", execID, errdefs.ErrInvalidArgument)
	}
	t, err := s.tasks.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := s.containers.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	proc, err := execProcess(c, req)
	if err != nil {
		return nil, err
	}
	r := newRelay(req.GetStdin())
	if _, err := t.Exec(ctx, execID, proc, r.taskIO(proc.Terminal, req.GetStdout(), req.GetStderr(), "")); err != nil {
		r.close()
		return nil, err
	}
	if req.GetStdin() || req.GetStdout() || req.GetStderr() {
		s.relays.put(relayKey{ns, id, execID}, r)
	}
	return &emptypb.Empty{}, nil
}

// execProcess is the process of an exec into container c.
func execProcess(c meta.Container, req *api.ExecRequest) (*specs.Process, error) {
	var sp specs.Spec
	if err := json.Unmarshal(c.Spec, &sp); err != nil || sp.Process == nil {
		return nil, fmt.Errorf("container %q: no runtime-spec with a process: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	p := sp.Process
	p.Args, p.Terminal, p.ConsoleSize = req.GetArgs(), req.GetTerminal(), nil
	if w, h := req.GetWidth(), req.GetHeight(); p.Terminal && w > 0 && h > 0 {
		p.ConsoleSize = &specs.Box{Width: uint(w), Height: uint(h)}
	}
	if cwd := req.GetCwd(); cwd != "" {
		if !strings.HasPrefix(cwd, "/") {
			return nil, fmt.Errorf("exec cwd %q: not absolute: %w", cwd, errdefs.ErrInvalidArgument)
		}
		p.Cwd = cwd
	}
	for _, kv := range req.GetEnv() {
		k, _, ok := splitEnv(kv)
		if !ok {
			return nil, fmt.Errorf("exec env %q: want KEY=VALUE: %w", kv, errdefs.ErrInvalidArgument)
		}
		env := p.Env[:0]
		for _, e := range p.Env {
			if !strings.HasPrefix(e, k+"=") {
				env = append(env, e)
			}
		}
		p.Env = append(env, kv)
	}
	return p, nil
}

func (s *tasksService) ResizePty(ctx context.Context, req *api.ResizePtyRequest) (*emptypb.Empty, error) {
	w, h := req.GetWidth(), req.GetHeight()
	if w > 0xffff || h > 0xffff {
		return nil, fmt.Errorf("window size %dx%d: %w", w, h, errdefs.ErrInvalidArgument)
	}
	_, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, p.Resize(ctx, uint16(w), uint16(h))
}

// CloseIO closes the process's stdin: through its relay when it has one
// (after what was written), else in the shim.
func (s *tasksService) CloseIO(ctx context.Context, req *api.CloseIORequest) (*emptypb.Empty, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if r := s.relays.get(relayKey{ns, req.GetContainerId(), req.GetExecId()}); r != nil && r.stdinW != nil {
		r.closeStdin()
		return &emptypb.Empty{}, nil
	}
	_, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, p.CloseStdin(ctx)
}

func (s *tasksService) Wait(ctx context.Context, req *api.WaitRequest) (*api.WaitResponse, error) {
	_, p, err := s.process(ctx, req.GetContainerId(), req.GetExecId())
	if err != nil {
		return nil, err
	}
	e, err := p.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return &api.WaitResponse{Exit: exitToProto(&e)}, nil
}

// Delete deletes a stopped task (the container record stays) or exec
// process, and their relays.
func (s *tasksService) Delete(ctx context.Context, req *api.DeleteRequest) (*api.DeleteResponse, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	id, execID := req.GetContainerId(), req.GetExecId()
	if execID == "" {
		unlock, err := s.containers.locks.lock(ctx, ns+"/"+id)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	_, p, err := s.process(ctx, id, execID)
	if err != nil {
		return nil, err
	}
	e, err := p.Delete(ctx)
	if err != nil {
		return nil, err
	}
	if execID == "" {
		// The exit is in the record when the call returns, as a client
		// that reads the container next expects; the exit event writes
		// it too, later, and idempotently.
		err := statusWriter{s.containers.db}.update(ctx, id, func(st *meta.Status) bool { return exited(st, e) })
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("container %q: status: %w", id, err)
		}
	}
	s.relays.drop(relayKey{ns, id, execID})
	return &api.DeleteResponse{Exit: exitToProto(&e)}, nil
}

func (s *tasksService) Metrics(ctx context.Context, req *api.MetricsRequest) (*api.MetricsResponse, error) {
	t, err := s.tasks.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := t.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return &api.MetricsResponse{Metrics: &api.Metrics{
		Timestamp:     convert.Timestamp(st.Time),
		CpuUsageNanos: st.CPU.UsageNanos, CpuUserNanos: st.CPU.UserNanos, CpuSystemNanos: st.CPU.SystemNanos,
		MemoryUsage: st.Memory.Usage, MemoryWorkingSet: st.Memory.WorkingSet, MemoryLimit: st.Memory.Limit,
		MemoryRss: st.Memory.RSS, MemoryCache: st.Memory.Cache, OomKills: st.Memory.OOMKills,
		PidsCurrent: st.Pids.Current, PidsLimit: st.Pids.Limit,
		IoReadBytes: st.IO.ReadBytes, IoWriteBytes: st.IO.WriteBytes, IoReadOps: st.IO.ReadOps, IoWriteOps: st.IO.WriteOps,
	}}, nil
}

func (s *tasksService) Checkpoint(ctx context.Context, req *api.CheckpointRequest) (*emptypb.Empty, error) {
	if !filepath.IsAbs(req.GetImagePath()) {
		return nil, fmt.Errorf("checkpoint image path %q: not absolute: %w", req.GetImagePath(), errdefs.ErrInvalidArgument)
	}
	t, err := s.tasks.Get(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, t.Checkpoint(ctx, task.CheckpointOpts{ImagePath: req.GetImagePath(), WorkPath: req.GetWorkPath(), Exit: req.GetExit()})
}

func processToProto(st task.State) *api.Process {
	return &api.Process{
		ContainerId: st.ID, ExecId: st.ExecID, Group: st.Group, Pid: st.Pid,
		Status: string(st.Status), Exit: exitToProto(st.Exit), Terminal: st.Terminal,
	}
}

func exitToProto(e *task.Exit) *api.Exit {
	if e == nil {
		return nil
	}
	return &api.Exit{Status: e.Status, ExitedAt: convert.Timestamp(e.At), Reason: e.Reason}
}
