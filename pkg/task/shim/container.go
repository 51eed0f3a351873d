package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// container is one container of the shim's group: its bundle, its runtime,
// its init process and its exec processes.
type container struct {
	s      *Service
	id     string
	bundle string
	rt     *runc.Runc
	log    runtimeLog
	rootfs bool // the bundle's rootfs directory holds our mounts
	init   *initProcess

	mu      sync.Mutex // guards the fields below
	execs   map[string]*execProcess
	cg      *cgroups.Cgroup // nil when the cgroup could not be found
	oomBase uint64          // oom_kill when the container was created
	stopOOM func()
}

func (c *container) subject() string { return fmt.Sprintf("container %q", c.id) }

// createSpec is what the shim reads of a container's runtime spec. The
// rest passes through to config.json untouched: decoding the whole
// specs.Spec would keep encoding/json's caches of its types (~170 KiB)
// in every shim for its life.
type createSpec struct {
	Process *struct {
		Terminal bool     `json:"terminal,omitempty"`
		Args     []string `json:"args,omitempty"`
		User     struct {
			UID uint32 `json:"uid"`
			GID uint32 `json:"gid"`
		} `json:"user"`
	} `json:"process,omitempty"`
	Root *struct {
		Path string `json:"path"`
	} `json:"root,omitempty"`

	raw []byte // the spec as the request has it
}

// user returns the uid and gid the spec's process runs as.
func (s *createSpec) user() (int, int) {
	if s.Process == nil {
		return 0, 0
	}
	return int(s.Process.User.UID), int(s.Process.User.GID)
}

// withRoot returns the spec as JSON with root.path set to path, every
// other field as the request has it.
func (s *createSpec) withRoot(path string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(s.raw, &top); err != nil {
		return nil, err
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(top["root"], &root); err != nil {
		return nil, err
	}
	p, err := json.Marshal(path)
	if err != nil {
		return nil, err
	}
	root["path"] = p
	if top["root"], err = json.Marshal(root); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// validateCreate checks a create request and returns its spec.
func validateCreate(req *shimapi.CreateRequest) (*createSpec, error) {
	if err := identifiers.Validate(req.ID); err != nil {
		return nil, fmt.Errorf("container id: %w", err)
	}
	if req.Runtime == "" {
		return nil, fmt.Errorf("container %q: no runtime binary: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	spec := createSpec{raw: req.Spec}
	if err := json.Unmarshal(req.Spec, &spec); err != nil {
		return nil, fmt.Errorf("container %q: spec: %v: %w", req.ID, err, errdefs.ErrInvalidArgument)
	}
	if spec.Process == nil || spec.Root == nil {
		return nil, fmt.Errorf("container %q: spec has no process or no root: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	if len(spec.Process.Args) == 0 && req.Checkpoint == "" {
		return nil, fmt.Errorf("container %q: spec's process has no args: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	if req.IO.Terminal != spec.Process.Terminal {
		return nil, fmt.Errorf("container %q: io.terminal is %v but the spec's process.terminal is %v: %w",
			req.ID, req.IO.Terminal, spec.Process.Terminal, errdefs.ErrInvalidArgument)
	}
	return &spec, nil
}

// create makes the container: bundle, rootfs, IO and the runtime's create.
// Everything it did is undone when it fails.
func (s *Service) create(ctx context.Context, req *shimapi.CreateRequest, spec *createSpec) (_ *container, retErr error) {
	binary, err := exec.LookPath(req.Runtime)
	if err != nil {
		return nil, fmt.Errorf("container %q: runtime %q: %v: %w", req.ID, req.Runtime, err, errdefs.ErrInvalidArgument)
	}
	c := &container{s: s, id: req.ID, bundle: filepath.Join(s.dir, req.ID), execs: make(map[string]*execProcess)}
	if err := os.Mkdir(c.bundle, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %q: bundle %s: %w", req.ID, c.bundle, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("container %q: bundle: %w", req.ID, err)
	}
	var undo []func()
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			os.RemoveAll(c.bundle)
		}
	}()
	c.log = runtimeLog(filepath.Join(c.bundle, "runtime.log"))
	c.rt = &runc.Runc{Command: binary, Root: filepath.Join(c.bundle, shimapi.RuntimeRoot), Log: string(c.log), LogFormat: runc.JSON}
	if err := c.writeBundle(binary, req, spec); err != nil {
		return nil, err
	}
	if len(req.Rootfs) > 0 {
		if err := mount.MountAll(req.Rootfs, filepath.Join(c.bundle, shimapi.RootfsDir)); err != nil {
			return nil, fmt.Errorf("container %q: rootfs: %w", req.ID, err)
		}
		c.rootfs = true
		undo = append(undo, func() { _ = mount.UnmountAll(filepath.Join(c.bundle, shimapi.RootfsDir)) })
	}
	uid, gid := spec.user()
	pio, err := newProcIO(req.IO, uid, gid)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", req.ID, err)
	}
	undo = append(undo, pio.abort)
	c.init = &initProcess{c: c, io: pio, checkpoint: req.Checkpoint, exited: make(chan struct{})}
	if req.Checkpoint != "" {
		c.init.st = createdCheckpointState{c.init}
		return c, nil
	}
	c.init.st = createdState{c.init}
	if err := c.runtimeCreate(ctx, pio); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *container) writeBundle(binary string, req *shimapi.CreateRequest, spec *createSpec) error {
	b := spec.raw
	if len(req.Rootfs) > 0 {
		if err := os.Mkdir(filepath.Join(c.bundle, shimapi.RootfsDir), 0o700); err != nil {
			return fmt.Errorf("container %q: rootfs: %w", c.id, err)
		}
		var err error
		if b, err = spec.withRoot(shimapi.RootfsDir); err != nil {
			return fmt.Errorf("container %q: spec: %v: %w", c.id, err, errdefs.ErrInvalidArgument)
		}
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("container %q: bundle: %w", c.id, err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, shimapi.RuntimeFile), []byte(binary+"\n"), 0o600); err != nil {
		return fmt.Errorf("container %q: bundle: %w", c.id, err)
	}
	return nil
}

// runtimeCreate runs the runtime's create and starts the IO and the OOM
// watch of the new init process.
func (c *container) runtimeCreate(ctx context.Context, pio *procIO) error {
	p := c.init
	sub := c.s.preStart()
	opts := &runc.CreateOpts{IO: pio, PidFile: p.pidFile()}
	if pio.console != nil {
		opts.ConsoleSocket = pio.console
	}
	mark := c.log.mark()
	// The runtime runs to its end even if the caller gives up (or its
	// daemon dies): killed half-way, runc leaves the cgroups it made and
	// no state to delete them by. A create whose caller is gone is then
	// undone whole.
	rctx, cancel := runtimeContext(ctx)
	err := c.rt.Create(rctx, c.id, c.bundle, opts)
	cancel()
	var pid int
	if err == nil {
		pid, err = runc.ReadPidFile(p.pidFile())
	}
	if err == nil && ctx.Err() != nil {
		c.s.abandon(sub)
		c.forceDelete()
		return fmt.Errorf("container %q: create: %w", c.id, ctx.Err())
	}
	if err != nil {
		c.s.abandon(sub)
		err = runtimeError("create", c.id, err, c.log.lastError(mark))
		c.forceDelete()
		return err
	}
	if err := pio.started(ctx); err != nil {
		c.s.abandon(sub)
		c.forceDelete()
		return fmt.Errorf("container %q: %w", c.id, err)
	}
	p.pid = pid
	c.watchCgroup(pid)
	if e := c.s.started(sub, pid, p); e != nil {
		p.setExited(*e)
	}
	return nil
}

// forceDelete removes what the runtime made, under a fresh bounded ctx.
func (c *container) forceDelete() {
	ctx, cancel := cleanupContext()
	defer cancel()
	_ = c.rt.Delete(ctx, c.id, &runc.DeleteOpts{Force: true})
}

func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// watchCgroup finds the container's cgroup from its init pid, notes its
// OOM kill count and watches it for OOM kills.
func (c *container) watchCgroup(pid int) {
	cg, err := cgroups.Load(pid)
	if err != nil {
		c.s.logf("container %s: no cgroup for OOM events: %v", c.id, err)
		return
	}
	base, _ := cg.OOMKills()
	stop, err := watchOOM(cg, func() {
		c.s.events.add(shimapi.Event{Topic: shimapi.TopicOOM, ID: c.id})
	})
	if err != nil {
		c.s.logf("container %s: %v", c.id, err)
	}
	c.mu.Lock()
	c.cg, c.oomBase, c.stopOOM = cg, base, stop
	c.mu.Unlock()
}

// runtimeStateExists says whether the runtime still has a state for the
// container (its directory under the runtime's root).
func (c *container) runtimeStateExists() bool {
	_, err := os.Stat(filepath.Join(c.bundle, shimapi.RuntimeRoot, c.id))
	return !errors.Is(err, os.ErrNotExist)
}

// removeCgroup removes what the runtime's delete left of the container's
// cgroup: runc removes its state even when its cgroup removal failed
// (processes killed with the container still exiting on a busy host:
// it retries for 150 ms), and the next delete then finds no container,
// leaving an empty cgroup behind for good. The processes still in it are
// killed when it is the container's own (named for it), as a forced
// delete kills them; a cgroup named otherwise (a spec that put the
// container in a cgroup it shares) is only removed once empty.
func (c *container) removeCgroup(ctx context.Context) error {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return nil
	}
	return cg.RemoveContainer(ctx, c.id)
}

// oomKilled says whether the OOM killer acted in the container's cgroup
// since it was created. Read at the exit of init, before the cgroup goes.
func (c *container) oomKilled() bool {
	c.mu.Lock()
	cg, base := c.cg, c.oomBase
	c.mu.Unlock()
	if cg == nil {
		return false
	}
	n, err := cg.OOMKills()
	return err == nil && n > base
}

// waitExecs waits, up to timeout, for the exec processes still running.
func (c *container) waitExecs(timeout time.Duration) {
	deadline := time.After(timeout)
	c.mu.Lock()
	var chans []chan struct{}
	for _, e := range c.execs {
		chans = append(chans, e.exited)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-deadline:
			return
		}
	}
}

// removeFromHost undoes the rest of create once the runtime has deleted
// the container: the OOM watch, the rootfs mounts and the bundle.
func (c *container) removeFromHost() error {
	c.mu.Lock()
	if c.stopOOM != nil {
		c.stopOOM()
		c.stopOOM = nil
	}
	c.mu.Unlock()
	if c.rootfs {
		if err := mount.UnmountAll(filepath.Join(c.bundle, shimapi.RootfsDir)); err != nil {
			return fmt.Errorf("container %q: unmount rootfs: %w", c.id, err)
		}
	}
	if err := os.RemoveAll(c.bundle); err != nil {
		return fmt.Errorf("container %q: remove bundle: %w", c.id, err)
	}
	return nil
}

// pids lists the processes in the container's cgroup, as `runc ps` does,
// without running the runtime (crun 1.8's ps crashes). Without a cgroup
// it asks the runtime.
func (c *container) pids(ctx context.Context) ([]int, error) {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		mark := c.log.mark()
		pids, err := c.rt.Ps(ctx, c.id)
		return pids, runtimeError("ps", c.id, err, c.log.lastError(mark))
	}
	var pids []int
	err := filepath.WalkDir(cg.MemoryDir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("container %q: pids: %w", c.id, err)
	}
	sort.Ints(pids)
	return pids, nil
}
