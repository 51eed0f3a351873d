package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// statusWriter writes what the shims report into the last known status of
// the container, or sandbox, whose task it is: the one path from a
// process's exit to bbolt. It is the task Manager's OnEvent, which never
// drops an event and may replay one, so every write is idempotent: a
// replayed or late event never moves a status back.
type statusWriter struct{ db *meta.DB }

func (w statusWriter) onEvent(ctx context.Context, ev task.Event) {
	if ev.ExecID != "" {
		return // an exec's life is not the container's
	}
	if w.earlier(ctx, ev) {
		return
	}
	var err error
	switch ev.Topic {
	case shimapi.TopicCreate:
		err = w.update(ctx, ev.ID, func(st *meta.Status) bool { return st.Created(ev.Pid) })
	case shimapi.TopicStart:
		err = w.update(ctx, ev.ID, func(st *meta.Status) bool { return st.Started(ev.Pid, ev.At) })
	case shimapi.TopicPaused, shimapi.TopicResumed:
		err = w.update(ctx, ev.ID, func(st *meta.Status) bool { return st.Paused(ev.Topic == shimapi.TopicPaused) })
	case shimapi.TopicExit, shimapi.TopicDelete:
		if ev.Exit == nil {
			return
		}
		err = w.update(ctx, ev.ID, func(st *meta.Status) bool { return exited(st, *ev.Exit) })
	}
	if err != nil && !errdefs.IsNotFound(err) {
		// The task outlived its record (a delete raced its exit): nothing
		// to write. Anything else is a database that refuses writes.
		klog.FromContext(ctx).Error(err, "Write the status of a task", "id", ev.ID, "topic", ev.Topic)
	}
}

// earlier reports whether ev happened before the container that now has
// its ID was created: an event of an earlier container of that ID (run
// --rm, then run of the same name, in the same shim), delivered late. It
// would mark the new container exited, or started, while it is neither.
// Sandbox IDs are never reused.
func (w statusWriter) earlier(ctx context.Context, ev task.Event) bool {
	c, err := w.db.Containers().Get(ctx, ev.ID)
	return err == nil && ev.At.Before(c.CreatedAt)
}

// exited records the exit e in st.
func exited(st *meta.Status, e task.Exit) bool {
	var msg string
	if e.Reason == shimapi.ReasonShimGone {
		msg = "the shim holding the process died; its exit status is unknown"
	}
	return st.Exited(int32(e.Status), e.At, e.Reason, msg)
}

// update applies fn to the status of the container or sandbox id.
func (w statusWriter) update(ctx context.Context, id string, fn func(*meta.Status) bool) error {
	return w.db.UpdateStatus(ctx, id, fn)
}

// newTaskManager starts the task Manager, reconnects to the shims that
// outlived the previous daemon (their missed exits arrive through the
// status writer) and marks exited what no shim holds any more.
func (s *Server) newTaskManager(ctx context.Context) error {
	w := statusWriter{db: s.db}
	metrics, err := newTaskMetrics(s.registry)
	if err != nil {
		return err
	}
	m, err := task.NewManager(task.Config{
		StateDir:   filepath.Join(s.cfg.State, "tasks"),
		ShimBinary: s.cfg.ShimBinary,
		OnEvent: func(ctx context.Context, ev task.Event) {
			w.onEvent(ctx, ev)
			metrics.onEvent(ev)
			if c := s.criEvents.Load(); c != nil {
				c.TaskEvent(ev)
			}
		},
		Publisher:    s.exchange,
		ObserveStart: metrics.observeStart,
	})
	if err != nil {
		return fmt.Errorf("task manager: %w", err)
	}
	s.tasks = m
	if err := registerShims(s.registry, m); err != nil {
		return err
	}
	start := time.Now()
	live, err := m.Restore(ctx)
	if err != nil {
		// Shims that could not be restored are left alone; their
		// containers stay as recorded until the next start.
		klog.FromContext(ctx).Error(err, "Restore tasks")
	}
	n, err := w.reconcile(ctx, live)
	if err != nil {
		return fmt.Errorf("reconcile task status: %w", err)
	}
	klog.FromContext(ctx).Info("Tasks restored", "live", len(live), "lost", n, "elapsed", time.Since(start))
	return nil
}

// reconcile marks exited, with reason ShimGone, every container and
// sandbox recorded as live whose task no shim holds (its shim's state
// went with a reboot), and returns how many.
func (w statusWriter) reconcile(ctx context.Context, live []task.State) (int, error) {
	// Every task Restore found, stopped ones too: their own exit, real
	// or ShimGone, reaches the status writer as an event.
	held := map[string]bool{} // by "<namespace>/<id>"
	for _, st := range live {
		held[st.Namespace+"/"+st.ID] = true
	}
	nss, err := w.db.Namespaces().List(ctx)
	if err != nil {
		return 0, err
	}
	lost := task.Exit{Status: 255, At: time.Now().UTC(), Reason: shimapi.ReasonShimGone}
	n := 0
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns.Name)
		var ids []string
		cs, err := w.db.Containers().List(nctx)
		if err != nil {
			return n, err
		}
		for _, c := range cs {
			if c.Status.Live() && !held[ns.Name+"/"+c.ID] {
				ids = append(ids, c.ID)
			}
		}
		sbs, err := w.db.Sandboxes().List(nctx)
		if err != nil {
			return n, err
		}
		for _, sb := range sbs {
			// A pod without a pause is held by its pinned namespaces.
			if sb.Status.Live() && !held[ns.Name+"/"+sb.ID] && !sandbox.Live(sb) {
				ids = append(ids, sb.ID)
			}
		}
		for _, id := range ids {
			if err := w.update(nctx, id, func(st *meta.Status) bool { return st.Live() && exited(st, lost) }); err != nil && !errdefs.IsNotFound(err) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
