package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	api "github.com/cri-runtime/cri-runtime/api/services/snapshots/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// rebaseTimeout bounds the call that CanRebase makes, as the method of
// snapshot.Rebaser takes no ctx.
const rebaseTimeout = 10 * time.Second

// Snapshotter returns the daemon's snapshotter name ("overlayfs",
// "native") as a full snapshot.Snapshotter, in the namespace of each
// call's ctx. An unknown name fails every call with NotFound. Close does
// nothing: the connection belongs to the Client.
func (c *Client) Snapshotter(name string) snapshot.Snapshotter {
	return &snapshotter{client: api.NewSnapshotsClient(c.conn), name: name}
}

// SnapshotterInfo describes one of the daemon's snapshotters.
type SnapshotterInfo struct {
	Name string
	// Default is set on the daemon's default snapshotter.
	Default bool
	// CanRebase is set when Commit honours snapshot.WithParent.
	CanRebase bool
}

// Snapshotters describes the daemon's snapshotters, sorted by name.
func (c *Client) Snapshotters(ctx context.Context) ([]SnapshotterInfo, error) {
	return listSnapshotters(ctx, api.NewSnapshotsClient(c.conn))
}

func listSnapshotters(ctx context.Context, client api.SnapshotsClient) ([]SnapshotterInfo, error) {
	resp, err := client.Snapshotters(ctx, &api.SnapshottersRequest{})
	if err != nil {
		return nil, err
	}
	list := make([]SnapshotterInfo, 0, len(resp.GetSnapshotters()))
	for _, sn := range resp.GetSnapshotters() {
		list = append(list, SnapshotterInfo{Name: sn.GetName(), Default: sn.GetDefault(), CanRebase: sn.GetRebase()})
	}
	return list, nil
}

// snapshotter is a snapshot.Snapshotter over the snapshots service.
type snapshotter struct {
	client api.SnapshotsClient
	name   string

	mu     sync.Mutex // guards rebase
	rebase *bool      // the daemon's answer, once it has given one
}

var (
	_ snapshot.Snapshotter = (*snapshotter)(nil)
	_ snapshot.Rebaser     = (*snapshotter)(nil)
)

// applyOpts returns the Info that opts describe.
func applyOpts(opts []snapshot.Opt) (snapshot.Info, error) {
	var info snapshot.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return snapshot.Info{}, err
		}
	}
	return info, nil
}

// createOpts returns the labels of opts for Prepare and View, which take
// the parent as an argument and reject snapshot.WithParent.
func createOpts(key string, opts []snapshot.Opt) (map[string]string, error) {
	info, err := applyOpts(opts)
	if err != nil {
		return nil, err
	}
	if info.Parent != "" {
		return nil, fmt.Errorf("snapshot %q: WithParent is for Commit only: %w", key, errdefs.ErrInvalidArgument)
	}
	return info.Labels, nil
}

func (s *snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	resp, err := s.client.Stat(ctx, &api.StatSnapshotRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshot.Info{}, err
	}
	return convert.SnapshotInfoFromProto(resp.GetInfo()), nil
}

func (s *snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	req := &api.UpdateSnapshotRequest{Snapshotter: s.name, Info: convert.SnapshotInfoToProto(info)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return snapshot.Info{}, err
	}
	return convert.SnapshotInfoFromProto(resp.GetInfo()), nil
}

func (s *snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	resp, err := s.client.Usage(ctx, &api.UsageRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return snapshot.Usage{}, err
	}
	return convert.UsageFromProto(resp), nil
}

func (s *snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	resp, err := s.client.Mounts(ctx, &api.MountsRequest{Snapshotter: s.name, Key: key})
	if err != nil {
		return nil, err
	}
	return convert.MountsFromProto(resp.GetMounts()), nil
}

func (s *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	labels, err := createOpts(key, opts)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Prepare(ctx, &api.PrepareSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: labels})
	if err != nil {
		return nil, err
	}
	return convert.MountsFromProto(resp.GetMounts()), nil
}

func (s *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	labels, err := createOpts(key, opts)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.View(ctx, &api.ViewSnapshotRequest{Snapshotter: s.name, Key: key, Parent: parent, Labels: labels})
	if err != nil {
		return nil, err
	}
	return convert.MountsFromProto(resp.GetMounts()), nil
}

// Commit commits key as name with the labels of opts and, with
// snapshot.WithParent, onto that parent.
func (s *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	info, err := applyOpts(opts)
	if err != nil {
		return err
	}
	_, err = s.client.Commit(ctx, &api.CommitSnapshotRequest{Snapshotter: s.name, Name: name, Key: key, Labels: info.Labels, Parent: info.Parent})
	return err
}

func (s *snapshotter) Remove(ctx context.Context, key string) error {
	_, err := s.client.Remove(ctx, &api.RemoveSnapshotRequest{Snapshotter: s.name, Key: key})
	return err
}

func (s *snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc, filters ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when fn stops the walk
	stream, err := s.client.List(ctx, &api.ListSnapshotsRequest{Snapshotter: s.name, Filters: filters})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, info := range resp.GetInfo() {
			if err := fn(ctx, convert.SnapshotInfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

// Close does nothing: the connection belongs to the Client.
func (s *snapshotter) Close() error { return nil }

// CanRebase asks the daemon whether its snapshotter honours WithParent
// and remembers the answer. Should the daemon not answer, it reports false
// (the safe choice: layers are then committed in order) and asks again on
// the next call.
func (s *snapshotter) CanRebase() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rebase != nil {
		return *s.rebase
	}
	ctx, cancel := context.WithTimeout(context.Background(), rebaseTimeout)
	defer cancel()
	list, err := listSnapshotters(ctx, s.client)
	if err != nil {
		return false
	}
	rebase := false
	for _, sn := range list {
		if sn.Name == s.name {
			rebase = sn.CanRebase
		}
	}
	s.rebase = &rebase
	return rebase
}
