package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// fsUsage is the usage of the image filesystem by images: the blobs of the
// namespace and its committed snapshots (whose usage the snapshotter keeps
// from their commit, so that this costs no walk of the files). Writable
// layers are the containers', reported by their stats.
func (s *Service) fsUsage(ctx context.Context) ([]*runtime.FilesystemUsage, error) {
	var bytes, inodes uint64
	err := s.db.ContentStore().Walk(ctx, func(info content.Info) error {
		bytes += uint64(info.Size)
		inodes++
		return nil
	})
	if err != nil {
		return nil, err
	}
	sn := s.db.Snapshotter(s.images.Snapshotter())
	err = sn.Walk(ctx, func(ctx context.Context, info snapshot.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if err == nil {
			bytes += uint64(u.Size)
			inodes += uint64(u.Inodes)
		}
		return nil
	}, "kind==Committed")
	if err != nil {
		return nil, err
	}
	return []*runtime.FilesystemUsage{{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.root},
		UsedBytes:  &runtime.UInt64Value{Value: bytes},
		InodesUsed: &runtime.UInt64Value{Value: inodes},
	}}, nil
}
