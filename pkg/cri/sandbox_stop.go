package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// StopPodSandbox kills the pod's containers, stops its pause and detaches
// its network. Idempotent; it finishes under its own context when the
// caller's ends.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtime.StopPodSandboxResponse{}, nil // idempotent
	}
	if err != nil {
		return nil, err
	}
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if err := s.stopPod(cctx, pod); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

func (s *Service) stopPod(ctx context.Context, pod podRecord) error {
	unlock := s.locks.lock(pod.ID)
	defer unlock()
	ctrs, err := s.db.Containers().List(ctx, "sandboxid=="+pod.ID)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		if err := s.killContainer(ctx, c.ID); err != nil {
			return fmt.Errorf("stop sandbox %s: %w", pod.ID, err)
		}
	}
	return s.sandboxes.Stop(ctx, pod.ID, podNetwork(pod.config))
}

// RemovePodSandbox stops the pod if it runs, removes its containers and
// then the pod. A pod already gone is no error.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removePod(ctx, pod.ID); err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pod removed", "sandbox", pod.ID)
	return &runtime.RemovePodSandboxResponse{}, nil
}

// removePod stops the pod id, removes its containers, then the pod.
func (s *Service) removePod(ctx context.Context, id string) error {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	pod, err := s.pod(cctx, id)
	if err != nil {
		return err
	}
	if err := s.stopPod(cctx, pod); err != nil {
		return err
	}
	ctrs, err := s.db.Containers().List(cctx, "sandboxid=="+pod.ID)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		if err := s.removeContainer(cctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	unlock := s.locks.lock(pod.ID)
	defer unlock()
	if err := s.sandboxes.Remove(cctx, pod.ID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// pod returns the sandbox id, or the one whose ID starts with id.
func (s *Service) pod(ctx context.Context, id string) (podRecord, error) {
	if id == "" {
		return podRecord{}, fmt.Errorf("pod sandbox ID must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	sb, err := s.db.Sandboxes().Get(ctx, id)
	if errdefs.IsNotFound(err) {
		sb, err = byPrefix(ctx, "sandbox", id, s.db.Sandboxes().List, func(sb meta.Sandbox) string { return sb.ID })
	}
	if err != nil {
		return podRecord{}, err
	}
	return decodePod(sb)
}

// byPrefix finds the one record whose ID starts with prefix.
func byPrefix[T any](ctx context.Context, noun, prefix string, list func(context.Context, ...string) ([]T, error), idOf func(T) string) (T, error) {
	var zero T
	all, err := list(ctx)
	if err != nil {
		return zero, err
	}
	var found []T
	for _, r := range all {
		if strings.HasPrefix(idOf(r), prefix) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("%s %q: %w", noun, prefix, errdefs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return zero, fmt.Errorf("%s ID prefix %q names %d: %w", noun, prefix, len(found), errdefs.ErrInvalidArgument)
}

// cleanupCtx is a context for work that must finish whatever became of
// ctx (kubelet's deadline): its values, not its end, bounded.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// cleanupTimeout bounds a stop or a removal.
const cleanupTimeout = 2 * time.Minute
