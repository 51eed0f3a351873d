package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// StartContainer starts a created container.
func (s *Service) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	unlock := s.locks.lock(c.ID)
	defer unlock()
	switch st := containerState(c.Status); st {
	case runtime.ContainerState_CONTAINER_CREATED:
	case runtime.ContainerState_CONTAINER_RUNNING:
		return &runtime.StartContainerResponse{}, nil // a retry of a start that was done
	default:
		return nil, fmt.Errorf("container %s is %s, not created: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	t, err := s.tasks.Get(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	pid, err := t.Start(ctx)
	if errdefs.IsFailedPrecondition(err) {
		// A start that a crash of the daemon cut before it recorded it:
		// the retry finds the container running, and that is its answer.
		if st, serr := t.State(ctx); serr == nil && (st.Status == shimapi.StatusRunning || st.Status == shimapi.StatusPaused) {
			pid, err = st.Pid, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	// Written now, for the caller's next call; the start event agrees.
	if err := s.db.UpdateStatus(ctx, c.ID, func(st *meta.Status) bool { return st.Started(pid, time.Now()) }); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}

// StopContainer sends the container its stop signal, then SIGKILL after
// the timeout, and waits for its exit. A container not running is no
// error.
func (s *Service) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtime.StopContainerResponse{}, nil // idempotent
	}
	if err != nil {
		return nil, err
	}
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if err := s.stopContainer(cctx, c, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// stopContainer stops c: its stop signal, grace, then SIGKILL.
func (s *Service) stopContainer(ctx context.Context, c containerRecord, grace time.Duration) error {
	unlock := s.locks.lock(c.ID)
	defer unlock()
	t, err := s.tasks.Get(ctx, c.ID)
	if errdefs.IsNotFound(err) {
		return nil // no task: nothing runs
	}
	if err != nil {
		return err
	}
	st, err := t.State(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if st.Status != shimapi.StatusRunning && st.Status != shimapi.StatusPaused && st.Status != shimapi.StatusCreated {
		return nil
	}
	if grace > 0 && st.Status != shimapi.StatusCreated {
		sig := syscall.Signal(c.info.StopSignal)
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		if err := t.Kill(ctx, sig, task.KillOpts{}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
		wctx, cancel := context.WithTimeout(ctx, grace)
		exit, err := t.Wait(wctx)
		cancel()
		if err == nil {
			return s.recordExit(ctx, c.ID, exit)
		}
	}
	exit, err := killTask(ctx, t)
	if err != nil {
		return err
	}
	return s.recordExit(ctx, c.ID, exit)
}

// recordExit writes an exit the caller waited for into the status at
// once, for its next call; the shim's event agrees.
func (s *Service) recordExit(ctx context.Context, id string, e task.Exit) error {
	err := s.db.UpdateStatus(ctx, id, func(st *meta.Status) bool {
		return st.Exited(int32(e.Status), e.At, e.Reason, "")
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// killTask kills every process of t with SIGKILL and waits for its exit.
func killTask(ctx context.Context, t *task.Task) (task.Exit, error) {
	if err := t.Kill(ctx, syscall.SIGKILL, task.KillOpts{All: true}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
		return task.Exit{}, fmt.Errorf("container %s: kill: %w", t.ID(), err)
	}
	exit, err := t.Wait(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return task.Exit{}, fmt.Errorf("container %s: wait: %w", t.ID(), err)
	}
	return exit, nil
}

// killContainer kills the container id at once (a pod being stopped).
func (s *Service) killContainer(ctx context.Context, id string) error {
	c, err := s.container(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.stopContainer(ctx, c, 0)
}

// RemoveContainer kills the container if it runs, and removes its task,
// record, rootfs and image volumes. A container already gone is no error.
func (s *Service) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if err := s.removeContainer(cctx, req.GetContainerId()); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, id string) error {
	c, err := s.container(ctx, id)
	if err != nil {
		return err
	}
	if err := s.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	unlock := s.locks.lock(c.ID)
	defer unlock()
	if t, err := s.tasks.Get(ctx, c.ID); err == nil {
		if _, err := t.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
	}
	if err := s.db.Containers().Delete(ctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	var errs []error
	for i, m := range c.info.Mounts {
		if m.Image == "" {
			continue
		}
		if err := unmountVolume(s.volumeDir(c.ID, i)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	os.RemoveAll(filepath.Join(s.stateDir, "volumes", c.ID))
	sn := s.db.Snapshotter(c.Snapshotter)
	if sn != nil {
		keys := []string{c.SnapshotKey}
		for i, m := range c.info.Mounts {
			if m.Image != "" {
				keys = append(keys, fmt.Sprintf("%s-volume-%d", c.ID, i))
			}
		}
		for _, k := range keys {
			if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The record is gone; the collector frees what is left.
		klog.FromContext(ctx).Error(err, "Remove container leftovers", "container", c.ID)
	}
	return nil
}

// container returns the container id, or the one whose ID starts with id.
func (s *Service) container(ctx context.Context, id string) (containerRecord, error) {
	if id == "" {
		return containerRecord{}, fmt.Errorf("container ID must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.db.Containers().Get(ctx, id)
	if errdefs.IsNotFound(err) {
		c, err = byPrefix(ctx, "container", id, s.db.Containers().List, func(c meta.Container) string { return c.ID })
	}
	if err != nil {
		return containerRecord{}, err
	}
	return decodeContainer(c)
}
