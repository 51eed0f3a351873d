package shim

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// process is what the exit handler needs of an init or exec process.
type process interface {
	setExited(e shimapi.Exit)
}

// exitSub collects the exits reaped while a process is being started, so
// that one that exits before its pid is known is not missed.
type exitSub struct {
	exits map[int]runc.Exit
}

// Service holds the containers of one group and serves the shim API.
type Service struct {
	ns, group, dir string
	reaper         *reaper
	events         *eventLog
	stop           chan struct{} // closed at shutdown: ends the exit handler
	shutdown       chan struct{} // closed when an empty shim is asked to exit

	mu           sync.Mutex // guards the fields below
	containers   map[string]*container
	reserved     map[string]bool // ids being created
	shuttingDown bool

	exitMu   sync.Mutex // guards running, exitSubs
	running  map[int]process
	exitSubs map[*exitSub]struct{}
}

func newService(ns, group, dir string, r *reaper) *Service {
	s := &Service{
		ns: ns, group: group, dir: dir, reaper: r, events: newEventLog(),
		stop: make(chan struct{}), shutdown: make(chan struct{}),
		containers: make(map[string]*container), reserved: make(map[string]bool),
		running: make(map[int]process), exitSubs: make(map[*exitSub]struct{}),
	}
	go s.handleExits()
	return s
}

func (s *Service) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// handleExits gives each exit the reaper could not match to a runtime
// command to the process it belongs to.
func (s *Service) handleExits() {
	for {
		exits, ok := s.reaper.next(s.stop)
		if !ok {
			return
		}
		for _, e := range exits {
			s.exitMu.Lock()
			p := s.running[e.Pid]
			delete(s.running, e.Pid)
			if p == nil {
				for sub := range s.exitSubs {
					sub.exits[e.Pid] = e
				}
			}
			s.exitMu.Unlock()
			if p != nil {
				p.setExited(shimapi.Exit{Status: uint32(e.Status), At: e.Timestamp})
			}
		}
	}
}

// preStart begins collecting exits before a process is started.
func (s *Service) preStart() *exitSub {
	sub := &exitSub{exits: make(map[int]runc.Exit)}
	s.exitMu.Lock()
	s.exitSubs[sub] = struct{}{}
	s.exitMu.Unlock()
	return sub
}

// started registers the started process under pid, or returns its exit if
// it was reaped before its pid was known.
func (s *Service) started(sub *exitSub, pid int, p process) *shimapi.Exit {
	s.exitMu.Lock()
	defer s.exitMu.Unlock()
	delete(s.exitSubs, sub)
	if e, ok := sub.exits[pid]; ok {
		return &shimapi.Exit{Status: uint32(e.Status), At: e.Timestamp}
	}
	s.running[pid] = p
	return nil
}

func (s *Service) abandon(sub *exitSub) {
	s.exitMu.Lock()
	delete(s.exitSubs, sub)
	s.exitMu.Unlock()
}

func (s *Service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *Service) execProcess(id, execID string) (*container, *execProcess, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	e := c.execs[execID]
	c.mu.Unlock()
	if e == nil {
		return nil, nil, fmt.Errorf("exec %q in container %q: %w", execID, id, errdefs.ErrNotFound)
	}
	return c, e, nil
}

// Info describes the shim.
func (s *Service) Info(context.Context, *shimapi.Empty) (*shimapi.InfoResponse, error) {
	return &shimapi.InfoResponse{Version: shimapi.Version, Pid: os.Getpid(), Namespace: s.ns, Group: s.group}, nil
}

// Create creates a container.
func (s *Service) Create(ctx context.Context, req *shimapi.CreateRequest) (*shimapi.CreateResponse, error) {
	spec, err := validateCreate(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	switch {
	case s.shuttingDown:
		s.mu.Unlock()
		return nil, fmt.Errorf("shim of group %q is shutting down: %w", s.group, errdefs.ErrUnavailable)
	case s.containers[req.ID] != nil || s.reserved[req.ID]:
		s.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", req.ID, errdefs.ErrAlreadyExists)
	}
	s.reserved[req.ID] = true
	s.mu.Unlock()

	c, err := s.create(ctx, req, spec)
	s.mu.Lock()
	delete(s.reserved, req.ID)
	if err == nil {
		s.containers[req.ID] = c
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	st := c.init.state()
	seq := s.events.add(shimapi.Event{Topic: shimapi.TopicCreate, ID: req.ID, Pid: st.Pid})
	return &shimapi.CreateResponse{Pid: st.Pid, Bundle: c.bundle, Seq: seq}, nil
}

// Start starts a container's init or an exec process.
func (s *Service) Start(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.PidResponse, error) {
	if req.ExecID != "" {
		c, e, err := s.execProcess(req.ID, req.ExecID)
		if err != nil {
			return nil, err
		}
		if err := c.init.do(func(st initState) error { return st.exec() }); err != nil {
			return nil, err
		}
		err = e.do(func(st execState) error { return st.start(ctx) })
		return &shimapi.PidResponse{Pid: uint32(e.state().Pid)}, err
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	err = c.init.do(func(st initState) error { return st.start(ctx) })
	return &shimapi.PidResponse{Pid: c.init.state().Pid}, err
}

// State reports the processes of one container, or of all.
func (s *Service) State(_ context.Context, req *shimapi.StateRequest) (*shimapi.StateResponse, error) {
	resp := &shimapi.StateResponse{Seq: s.events.last(), Processes: []shimapi.ProcessState{}}
	var cs []*container
	if req.ID != "" {
		c, err := s.container(req.ID)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	} else {
		s.mu.Lock()
		for _, c := range s.containers {
			cs = append(cs, c)
		}
		s.mu.Unlock()
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
	for _, c := range cs {
		resp.Processes = append(resp.Processes, c.init.state())
		c.mu.Lock()
		execs := make([]*execProcess, 0, len(c.execs))
		for _, e := range c.execs {
			execs = append(execs, e)
		}
		c.mu.Unlock()
		sort.Slice(execs, func(i, j int) bool { return execs[i].id < execs[j].id })
		for _, e := range execs {
			resp.Processes = append(resp.Processes, e.state())
		}
	}
	return resp, nil
}

// Events returns the events after req.After, waiting for one.
func (s *Service) Events(ctx context.Context, req *shimapi.EventsRequest) (*shimapi.EventsResponse, error) {
	return s.events.after(ctx, req.After)
}

// Shutdown makes an empty shim exit.
func (s *Service) Shutdown(context.Context, *shimapi.Empty) (*shimapi.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.containers) + len(s.reserved); n > 0 {
		return nil, fmt.Errorf("shim of group %q holds %d containers: %w", s.group, n, errdefs.ErrFailedPrecondition)
	}
	if !s.shuttingDown {
		s.shuttingDown = true
		close(s.shutdown)
	}
	return &shimapi.Empty{}, nil
}
