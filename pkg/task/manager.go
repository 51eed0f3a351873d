package task

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// ShimBinaryName is the name of the shim binary looked for next to the
// daemon's executable, then in PATH.
const ShimBinaryName = "cri-runtime-shim"

// Config configures a Manager.
type Config struct {
	// StateDir holds the shims' sockets (s/), their directories
	// (<namespace>/<group>/) and the daemon's FIFOs (fifo/). It must be
	// absolute and short enough for the sockets (about 70 bytes at most).
	// Required; the daemon uses <state>/tasks.
	StateDir string
	// ShimBinary is the shim to start. Default: cri-runtime-shim next to
	// the daemon's executable, else in PATH.
	ShimBinary string
	// OnEvent receives every event of every shim, in the order the shim
	// numbered them, one call at a time per shim, including the exits
	// found by Restore or a resynchronisation (Event.Replayed). It is the
	// path for facts that must reach the database (exit code and time):
	// nothing is dropped, a slow OnEvent holds back only that shim's
	// events, which the shim keeps (and recovers after 1024 through a
	// resynchronisation). It must be idempotent: an exit can be replayed.
	// It may call the Manager (delete the task of an exit); its ctx, which
	// carries the event's namespace, ends when the Manager closes.
	OnEvent func(ctx context.Context, ev Event)
	// Publisher, when not nil, also gets every event on the exchange
	// under /tasks/... (for subscribers; it may drop).
	Publisher events.Publisher
	// ObserveStart, when not nil, is told how long each successful Start
	// of a container's init process took (the runtime's start, through
	// the shim): the daemon's task start latency metric. This package
	// links no metrics library.
	ObserveStart func(time.Duration)
}

// Event is an event of a shim, with where it came from.
type Event struct {
	Namespace string
	Group     string
	shimapi.Event
	// Replayed marks an exit found by Restore or a resynchronisation
	// rather than seen as it happened: it may have been delivered before.
	Replayed bool
}

// Manager starts, finds and talks to the shims: one per (namespace, group).
type Manager struct {
	cfg    Config
	ctx    context.Context // ends the event loops
	cancel context.CancelFunc
	wg     sync.WaitGroup // event loops and shim reapers

	mu    sync.Mutex // guards shims, tasks
	shims map[groupKey]*shim
	tasks map[taskKey]*shim // which shim holds each container
	// since is the number of the create event of each indexed
	// container (creating while its create is under way, 0 when not
	// known): a delete event numbered lower is of an earlier container
	// of the same ID.
	since map[taskKey]uint64

	fifoMu sync.Mutex // guards fifos
	fifos  map[fifoKey]*fifoSet
}

type groupKey struct{ ns, group string }
type taskKey struct{ ns, id string }

// NewManager returns a Manager. It starts nothing: shims are started on
// first use of a group, and found again by Restore.
func NewManager(cfg Config) (*Manager, error) {
	if !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("task state directory %q must be absolute: %w", cfg.StateDir, errdefs.ErrInvalidArgument)
	}
	if err := shimapi.CheckStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if cfg.ShimBinary == "" {
		bin, err := findShim()
		if err != nil {
			return nil, err
		}
		cfg.ShimBinary = bin
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("task state directory: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, ctx: ctx, cancel: cancel,
		shims: make(map[groupKey]*shim), tasks: make(map[taskKey]*shim), since: make(map[taskKey]uint64),
		fifos: make(map[fifoKey]*fifoSet),
	}, nil
}

func findShim() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ShimBinaryName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(ShimBinaryName)
	if err != nil {
		return "", fmt.Errorf("shim binary %s: not next to the daemon nor in PATH: %w", ShimBinaryName, errdefs.ErrNotFound)
	}
	return p, nil
}

// Close stops listening to the shims and disconnects from them. The
// shims, and their containers, keep running.
func (m *Manager) Close() error {
	// A shim whose last container was just deleted is on its way out:
	// let its follow loop stop it (bounded), then stop those still empty,
	// or they would idle until the next daemon's Restore.
	deadline := time.Now().Add(closeStopWait)
	for m.stopsPending() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m.mu.Lock()
	var live []*shim
	for _, sh := range m.shims {
		live = append(live, sh)
	}
	m.mu.Unlock()
	for _, sh := range live {
		sh.mu.Lock()
		c := sh.client
		sh.mu.Unlock()
		if c != nil {
			sh.stopIfEmptyAt(c, nil)
		}
	}
	m.cancel()
	m.mu.Lock()
	shims := make([]*shim, 0, len(m.shims))
	for _, sh := range m.shims {
		shims = append(shims, sh)
	}
	m.mu.Unlock()
	for _, sh := range shims {
		sh.disconnect()
	}
	m.wg.Wait()
	return nil
}

// closeStopWait bounds how long Close waits for the shims asked to stop.
const closeStopWait = 2 * time.Second

// stopsPending reports whether a shim was asked to stop and has not yet.
func (m *Manager) stopsPending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sh := range m.shims {
		sh.mu.Lock()
		pending := sh.wantStop || sh.stopping
		sh.mu.Unlock()
		if pending {
			return true
		}
	}
	return false
}

// forget drops the handle on a shim that stopped or died, so that the
// Manager does not keep one per group ever used. Called with sh.life held.
func (m *Manager) forget(sh *shim) {
	m.mu.Lock()
	if k := (groupKey{sh.ns, sh.group}); m.shims[k] == sh {
		delete(m.shims, k)
	}
	m.mu.Unlock()
	sh.mu.Lock()
	sh.removed = true
	sh.mu.Unlock()
}

// LiveShims is the number of shims the Manager is connected to: the
// daemon's live shims metric.
func (m *Manager) LiveShims() int {
	m.mu.Lock()
	shims := make([]*shim, 0, len(m.shims))
	for _, sh := range m.shims {
		shims = append(shims, sh)
	}
	m.mu.Unlock()
	n := 0
	for _, sh := range shims {
		if sh.connected() {
			n++
		}
	}
	return n
}

// shimFor returns the daemon's handle on the shim of a group.
func (m *Manager) shimFor(ns, group string) *shim {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := groupKey{ns, group}
	sh := m.shims[k]
	if sh == nil {
		sh = newShim(m, ns, group)
		m.shims[k] = sh
	}
	return sh
}

// CreateOpts describe a container to create.
type CreateOpts struct {
	ID string
	// Runtime is the OCI runtime binary: a name in PATH or a path (runc,
	// crun).
	Runtime string
	// Spec is the runtime-spec (config.json). With Rootfs, its root.path
	// is replaced by the bundle's rootfs directory.
	Spec   []byte
	Rootfs []Mount
	IO     IO
	// Checkpoint is a CRIU image directory to restore from at Start.
	Checkpoint string
}

// Create creates a container in the shim of group, starting the shim on
// the first use of the group. Concurrent first uses start one shim.
func (m *Manager) Create(ctx context.Context, group string, opts CreateOpts) (_ *Task, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if err := identifiers.Validate(group); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	if err := identifiers.Validate(opts.ID); err != nil {
		return nil, fmt.Errorf("container id: %w", err)
	}
	key := taskKey{ns, opts.ID}
	m.mu.Lock()
	if m.tasks[key] != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("task %q: %w", opts.ID, errdefs.ErrAlreadyExists)
	}
	m.mu.Unlock()
	for {
		t, err := m.shimFor(ns, group).create(ctx, opts)
		if err != errShimRemoved {
			return t, err
		}
	}
}

// Get returns the task of container id in the namespace of ctx.
func (m *Manager) Get(ctx context.Context, id string) (*Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	sh := m.tasks[taskKey{ns, id}]
	m.mu.Unlock()
	if sh == nil {
		return nil, fmt.Errorf("task %q: %w", id, errdefs.ErrNotFound)
	}
	return &Task{sh: sh, id: id}, nil
}

// List returns the state of the init process of every task in the
// namespace of ctx.
func (m *Manager) List(ctx context.Context) ([]State, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	var shims []*shim
	for k, sh := range m.shims {
		if k.ns == ns {
			shims = append(shims, sh)
		}
	}
	m.mu.Unlock()
	var out []State
	for _, sh := range shims {
		c, err := sh.conn(ctx)
		if err != nil {
			continue // a shim that is gone has no tasks left
		}
		st, err := c.State(ctx, "")
		if err != nil {
			continue
		}
		for _, p := range st.Processes {
			if p.ExecID == "" {
				out = append(out, State{Namespace: sh.ns, Group: sh.group, ProcessState: p})
			}
		}
	}
	return out, nil
}

// holds reports whether sh holds the task id of ns, as far as the Manager
// knows.
func (m *Manager) holds(ns, id string, sh *shim) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tasks[taskKey{ns, id}] == sh
}

// creating is the since of a container whose create is under way.
const creating = math.MaxUint64

// index records that sh holds container id, whose create event is
// numbered since (creating, or 0 when not known).
func (m *Manager) index(ns, id string, sh *shim, since uint64) {
	m.mu.Lock()
	m.tasks[taskKey{ns, id}] = sh
	m.since[taskKey{ns, id}] = since
	m.mu.Unlock()
}

func (m *Manager) unindex(ns, id string, sh *shim) {
	m.mu.Lock()
	if m.tasks[taskKey{ns, id}] == sh {
		delete(m.tasks, taskKey{ns, id})
		delete(m.since, taskKey{ns, id})
	}
	m.mu.Unlock()
}

// created records the number of the create event of container id, still
// indexed to sh.
func (m *Manager) created(ns, id string, sh *shim, seq uint64) {
	m.mu.Lock()
	if m.tasks[taskKey{ns, id}] == sh {
		m.since[taskKey{ns, id}] = seq
	}
	m.mu.Unlock()
}

// unindexDeleted is unindex for the delete event numbered seq of sh: it
// leaves alone a container of the same ID created after that delete, or
// being created (the shim numbers the events of one ID in order). It
// reports whether it unindexed.
func (m *Manager) unindexDeleted(ns, id string, sh *shim, seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := taskKey{ns, id}
	if m.tasks[k] != sh || m.since[k] >= seq {
		return false
	}
	delete(m.tasks, k)
	delete(m.since, k)
	return true
}

// deliver hands an event to OnEvent and the Publisher.
func (m *Manager) deliver(ev Event) {
	ctx := namespaces.WithNamespace(m.ctx, ev.Namespace)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ctx, ev)
	}
	if m.cfg.Publisher != nil {
		if msg := eventMessage(ev); msg != nil {
			_ = m.cfg.Publisher.Publish(ctx, ev.Topic, msg)
		}
	}
}
