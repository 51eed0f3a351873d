package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/snapshots/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// snapshotters is what the snapshots service needs of meta.DB: its
// namespaced views of the snapshotters, by name.
type snapshotters interface {
	// Snapshotter returns the view of the snapshotter name, nil if none.
	Snapshotter(name string) snapshot.Snapshotter
	// Snapshotters returns the names of the snapshotters, sorted.
	Snapshotters() []string
}

// snapshotsService serves api/services/snapshots over meta's namespaced
// views of the snapshotters.
type snapshotsService struct {
	api.UnimplementedSnapshotsServer
	db  snapshotters
	def string // the daemon's default snapshotter
}

// registerSnapshots registers the snapshots service on srv, over the
// snapshotters of db; def names the daemon's default snapshotter.
func registerSnapshots(srv *grpc.Server, db snapshotters, def string) {
	api.RegisterSnapshotsServer(srv, &snapshotsService{db: db, def: def})
}

// snapshotter returns the snapshotter a request names: InvalidArgument
// when it names none, NotFound when the daemon has no such snapshotter.
func (s *snapshotsService) snapshotter(name string) (snapshot.Snapshotter, error) {
	if name == "" {
		return nil, fmt.Errorf("snapshotter name is required: %w", errdefs.ErrInvalidArgument)
	}
	sn := s.db.Snapshotter(name)
	if sn == nil {
		return nil, fmt.Errorf("snapshotter %q (the daemon has %s): %w", name, strings.Join(s.db.Snapshotters(), ", "), errdefs.ErrNotFound)
	}
	return sn, nil
}

// labelOpts returns the options that set labels, none for no labels.
func labelOpts(labels map[string]string) []snapshot.Opt {
	if len(labels) == 0 {
		return nil
	}
	return []snapshot.Opt{snapshot.WithLabels(labels)}
}

func (s *snapshotsService) Prepare(ctx context.Context, req *api.PrepareSnapshotRequest) (*api.PrepareSnapshotResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	mounts, err := sn.Prepare(ctx, req.GetKey(), req.GetParent(), labelOpts(req.GetLabels())...)
	if err != nil {
		return nil, err
	}
	return &api.PrepareSnapshotResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

func (s *snapshotsService) View(ctx context.Context, req *api.ViewSnapshotRequest) (*api.ViewSnapshotResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	mounts, err := sn.View(ctx, req.GetKey(), req.GetParent(), labelOpts(req.GetLabels())...)
	if err != nil {
		return nil, err
	}
	return &api.ViewSnapshotResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

func (s *snapshotsService) Mounts(ctx context.Context, req *api.MountsRequest) (*api.MountsResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	mounts, err := sn.Mounts(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	return &api.MountsResponse{Mounts: convert.MountsToProto(mounts)}, nil
}

// Commit commits with the request's labels and, when it names one, onto
// its parent (a rebase, which the snapshotter may refuse as NotImplemented).
func (s *snapshotsService) Commit(ctx context.Context, req *api.CommitSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	opts := labelOpts(req.GetLabels())
	if p := req.GetParent(); p != "" {
		opts = append(opts, snapshot.WithParent(p))
	}
	return &emptypb.Empty{}, sn.Commit(ctx, req.GetName(), req.GetKey(), opts...)
}

func (s *snapshotsService) Remove(ctx context.Context, req *api.RemoveSnapshotRequest) (*emptypb.Empty, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, sn.Remove(ctx, req.GetKey())
}

func (s *snapshotsService) Stat(ctx context.Context, req *api.StatSnapshotRequest) (*api.StatSnapshotResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	info, err := sn.Stat(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	return &api.StatSnapshotResponse{Info: convert.SnapshotInfoToProto(info)}, nil
}

func (s *snapshotsService) Update(ctx context.Context, req *api.UpdateSnapshotRequest) (*api.UpdateSnapshotResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	info, err := sn.Update(ctx, convert.SnapshotInfoFromProto(req.GetInfo()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateSnapshotResponse{Info: convert.SnapshotInfoToProto(info)}, nil
}

// List collects the matching infos first and sends them afterwards, so that
// no store work waits on the network.
func (s *snapshotsService) List(req *api.ListSnapshotsRequest, stream api.Snapshots_ListServer) error {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return err
	}
	var infos []*api.Info
	err = sn.Walk(stream.Context(), func(_ context.Context, info snapshot.Info) error {
		infos = append(infos, convert.SnapshotInfoToProto(info))
		return nil
	}, req.GetFilters()...)
	if err != nil {
		return err
	}
	for len(infos) > 0 {
		n := min(len(infos), listBatch)
		if err := stream.Send(&api.ListSnapshotsResponse{Info: infos[:n]}); err != nil {
			return err
		}
		infos = infos[n:]
	}
	return nil
}

func (s *snapshotsService) Usage(ctx context.Context, req *api.UsageRequest) (*api.UsageResponse, error) {
	sn, err := s.snapshotter(req.GetSnapshotter())
	if err != nil {
		return nil, err
	}
	u, err := sn.Usage(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	return convert.UsageToProto(u), nil
}

func (s *snapshotsService) Snapshotters(context.Context, *api.SnapshottersRequest) (*api.SnapshottersResponse, error) {
	names := s.db.Snapshotters()
	resp := &api.SnapshottersResponse{Snapshotters: make([]*api.Snapshotter, 0, len(names))}
	for _, name := range names {
		resp.Snapshotters = append(resp.Snapshotters, &api.Snapshotter{
			Name:    name,
			Default: name == s.def,
			Rebase:  snapshot.CanRebase(s.db.Snapshotter(name)),
		})
	}
	return resp, nil
}
