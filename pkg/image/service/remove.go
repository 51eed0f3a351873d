package service

import (
	"context"
	"strings"

	"github.com/opencontainers/go-digest"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// Remove deletes the image name. What only it held (blobs, snapshots) is
// released to the garbage collector. With sync, Remove returns once a
// collection has run, with what of the image it could not free and what
// holds it: a lease (a failed pull's keeps its layers for
// keep_failed_pull), another image, or another reference.
func (s *Service) Remove(ctx context.Context, name string, sync bool) ([]meta.Holder, error) {
	if !sync {
		if err := s.db.Images().Delete(ctx, name); err != nil {
			return nil, err
		}
		klog.FromContext(ctx).V(2).Info("Image removed", "image", name)
		return nil, nil
	}
	img, err := s.db.Images().Get(ctx, name)
	if err != nil {
		return nil, err
	}
	blobs, snaps := s.resources(ctx, img.Target.Digest)
	if err := s.db.Images().Delete(ctx, name, meta.SynchronousDelete()); err != nil {
		return nil, err
	}
	held, err := s.db.Holders(ctx, blobs, snaps)
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Image removed", "image", name, "sync", true, "blobs", len(blobs), "snapshots", len(snaps), "holders", len(held))
	return held, nil
}

// resources lists the blobs reachable from target through the GC labels
// of content, and the snapshots they reference with the parents of each,
// as "<snapshotter>/<key>". What is missing is skipped.
func (s *Service) resources(ctx context.Context, target digest.Digest) ([]digest.Digest, []string) {
	var blobs []digest.Digest
	var snaps []string
	seen := map[string]bool{}
	queue := []digest.Digest{target}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d.String()] {
			continue
		}
		seen[d.String()] = true
		info, err := s.cs.Info(ctx, d)
		if err != nil {
			continue
		}
		blobs = append(blobs, d)
		for k, v := range info.Labels {
			switch {
			case strings.HasPrefix(k, meta.LabelGCRefContent):
				queue = append(queue, digest.Digest(v))
			case strings.HasPrefix(k, meta.LabelGCRefSnapshot+"."):
				sn, _, _ := strings.Cut(k[len(meta.LabelGCRefSnapshot)+1:], "/")
				snaps = append(snaps, s.snapshotChain(ctx, sn, v, seen)...)
			}
		}
	}
	return blobs, snaps
}

// snapshotChain returns key and its parents in the snapshotter sn.
func (s *Service) snapshotChain(ctx context.Context, sn, key string, seen map[string]bool) []string {
	ss := s.db.Snapshotter(sn)
	if ss == nil {
		return nil
	}
	var out []string
	for key != "" && !seen[sn+"/"+key] {
		seen[sn+"/"+key] = true
		info, err := ss.Stat(ctx, key)
		if err != nil {
			break
		}
		out = append(out, sn+"/"+key)
		key = info.Parent
	}
	return out
}
