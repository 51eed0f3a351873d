package server

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cri"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// newCRI builds the CRI service and its gRPC server (the same interceptor
// chain, in the k8s.io namespace), unless cfg.CRI.Address is "".
func (s *Server) newCRI(ctx context.Context, gm *grpcMetrics) error {
	if s.cfg.CRI.Address == "" {
		return nil
	}
	network, err := cni.New(s.cfg.CNI)
	if err != nil {
		return fmt.Errorf("cni: %w", err)
	}
	sandboxes, err := sandbox.NewManager(s.db, s.tasks, network, s.snapshotter,
		filepath.Join(s.cfg.Root, "cri", "sandboxes"), filepath.Join(s.cfg.State, "cri", "sandboxes"))
	if err != nil {
		return err
	}
	s.cri, err = cri.New(ctx, s.cfg.CRI, cri.Deps{
		DB: s.db, Images: s.images, Tasks: s.tasks, Sandboxes: sandboxes, Exchange: s.exchange,
		Root: s.cfg.Root, StateDir: filepath.Join(s.cfg.State, "cri"), TempMounts: s.tempMounts(), Registerer: s.registry,
	})
	if err != nil {
		return err
	}
	// Set once the CRI service exists: the task Manager's events start
	// with the daemon.
	s.criEvents.Store(s.cri)
	// The CRI's codec writes the lists from the encoding of their items,
	// kept with them (pkg/cri/list_wire.go).
	s.criGRPC = grpc.NewServer(append(serverOptions(gm, withK8sNamespace), grpc.ForceServerCodecV2(s.cri.Codec()))...)
	s.cri.Register(s.criGRPC)
	// The streaming server (exec, attach, port-forward URLs): its streams
	// end at once when Stop begins.
	return s.cri.Start(s.stopping)
}

// CRIAddress returns the path of the CRI socket, "" when none is served.
func (s *Server) CRIAddress() string {
	if s.criGRPC == nil {
		return ""
	}
	return s.cfg.CRI.Address
}
