package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// LabelCreateLease marks the lease of a create (a pod's start, a
// container's create): none outlives its create but through a crash, and
// Reconcile deletes those, so that what they held is collected.
const LabelCreateLease = "cri-runtime.io/cri.create"

// CreateLease returns ctx under a new create lease and the function that
// deletes it.
func CreateLease(ctx context.Context, db *meta.DB) (context.Context, func(), error) {
	lctx, done, err := meta.WithLease(ctx, db.Leases(), meta.WithLeaseLabels(map[string]string{LabelCreateLease: "1"}))
	if err != nil {
		return nil, nil, fmt.Errorf("create lease: %w", err)
	}
	return lctx, func() {
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		_ = done(cctx)
	}, nil
}

// Reconcile removes what creates, stops and removals interrupted by a
// crash left behind, in the namespace of ctx, before any call is served:
// the leases of creates (so that what they held is collected), network
// namespaces and pod files without a sandbox record (detached from CNI
// first, with the configuration libcni cached), and the tasks of no record
// (killed and deleted, their shims exit). It reports what it removed.
func (m *Manager) Reconcile(ctx context.Context) error {
	log := klog.FromContext(ctx)
	var errs []error
	ls, err := m.db.Leases().List(ctx, fmt.Sprintf("labels.%q", LabelCreateLease))
	if err != nil {
		return err
	}
	for _, l := range ls {
		if err := m.db.Leases().Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	known := map[string]bool{}
	sbs, err := m.db.Sandboxes().List(ctx)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		known[sb.ID] = true
	}
	ctrs, err := m.db.Containers().List(ctx)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		known[c.ID] = true
	}
	errs = append(errs, m.reconcileTasks(ctx, known)...)
	errs = append(errs, m.reconcileNetNS(ctx, known)...)
	errs = append(errs, m.reconcileFiles(known)...)
	log.V(2).Info("Pods reconciled", "leases", len(ls))
	return errors.Join(errs...)
}

// reconcileTasks kills and deletes the tasks of no record.
func (m *Manager) reconcileTasks(ctx context.Context, known map[string]bool) []error {
	states, err := m.tasks.List(ctx)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, st := range states {
		if known[st.ID] {
			continue
		}
		t, err := m.tasks.Get(ctx, st.ID)
		if err != nil {
			continue
		}
		_ = t.Kill(ctx, syscall.SIGKILL, task.KillOpts{All: true})
		_, _ = t.Wait(ctx)
		if _, err := t.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("task %s of no record: %w", st.ID, err))
			continue
		}
		klog.FromContext(ctx).Info("Removed a task of no record", "id", st.ID, "group", st.Group)
	}
	return errs
}

// reconcileNetNS detaches and removes the network namespaces of no pod.
func (m *Manager) reconcileNetNS(ctx context.Context, known map[string]bool) []error {
	dir := m.network.Config().NetNSDir
	names, err := cni.ListNetNS(dir)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, id := range names {
		if known[id] || identifiers.Validate(id) != nil {
			continue
		}
		p := filepath.Join(dir, id)
		if err := m.network.Teardown(ctx, id, p, cni.PodOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("netns %s of no pod: %w", id, err))
			continue
		}
		if err := cni.RemoveNetNS(p); err != nil {
			errs = append(errs, err)
			continue
		}
		klog.FromContext(ctx).Info("Removed the netns of no pod", "sandbox", id)
	}
	return errs
}

// reconcileFiles removes the pod files and shm mounts of no pod.
func (m *Manager) reconcileFiles(known map[string]bool) []error {
	var errs []error
	for _, dir := range []string{m.dir, m.stateDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if known[e.Name()] || !e.IsDir() {
				continue
			}
			if err := m.removeFiles(m.Paths(e.Name(), false, false)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
