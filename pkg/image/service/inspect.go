package service

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// Config returns the config of img for platform (the best match of an
// index).
func (s *Service) Config(ctx context.Context, img meta.Image, platform ocispec.Platform) (ocispec.Image, error) {
	mf, err := image.Manifest(ctx, s.cs, img.Target, image.Only(platform))
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	cfg, err := image.ReadConfig(ctx, s.cs, mf.Config)
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	return cfg, nil
}

// ImageSize is the disk usage of an image.
type ImageSize struct {
	// Content is the bytes of the blobs of its tree present in the content
	// store, each counted once.
	Content int64
	// Unpacked is the bytes of the layers of its unpacked snapshots in the
	// service's snapshotter, each counted once; -1 when not asked for.
	Unpacked int64
}

// Size returns the disk usage of img. The snapshot usage, the costly part
// (a walk of each layer's files unless cached), is computed only when
// unpacked is true.
func (s *Service) Size(ctx context.Context, img meta.Image, unpacked bool) (ImageSize, error) {
	size := ImageSize{Unpacked: -1}
	seen := map[digest.Digest]bool{}
	var configs []ocispec.Descriptor
	walk := image.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if seen[desc.Digest] {
			return nil, image.ErrSkipDesc
		}
		seen[desc.Digest] = true
		info, err := s.cs.Info(ctx, desc.Digest)
		if errdefs.IsNotFound(err) {
			return nil, image.ErrSkipDesc
		}
		if err != nil {
			return nil, err
		}
		size.Content += info.Size
		if image.IsConfig(desc.MediaType) {
			configs = append(configs, desc)
		}
		return image.Children(ctx, s.cs, desc)
	})
	if err := image.Walk(ctx, walk, img.Target); err != nil {
		return size, fmt.Errorf("image %q: size: %w", img.Name, err)
	}
	if !unpacked {
		return size, nil
	}
	usage, err := s.snapshotUsage(ctx, configs)
	if err != nil {
		return size, fmt.Errorf("image %q: size: %w", img.Name, err)
	}
	size.Unpacked = usage
	return size, nil
}

// snapshotUsage sums the usage of the unpacked chains of configs, each
// snapshot once.
func (s *Service) snapshotUsage(ctx context.Context, configs []ocispec.Descriptor) (int64, error) {
	var size int64
	seen := map[string]bool{}
	for _, c := range configs {
		diffIDs, err := image.RootFS(ctx, s.cs, c)
		if err != nil {
			return 0, err
		}
		for _, id := range image.ChainIDs(diffIDs) {
			if seen[id.String()] {
				continue
			}
			seen[id.String()] = true
			u, err := s.sn.Usage(ctx, id.String())
			if errdefs.IsNotFound(err) {
				break // not unpacked from here up
			}
			if err != nil {
				return 0, err
			}
			size += u.Size
		}
	}
	return size, nil
}

// Platforms lists the platforms of img's manifests that are in the
// content store: those its index names, or read from the config of a
// manifest without one.
func (s *Service) Platforms(ctx context.Context, img meta.Image) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	walk := image.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		switch {
		case image.IsIndex(desc.MediaType):
			return image.Children(ctx, s.cs, desc)
		case !image.IsManifest(desc.MediaType):
			return nil, nil
		case desc.Platform != nil:
			out = append(out, image.NormalizePlatform(*desc.Platform))
			return nil, nil
		}
		mf, err := image.ReadManifest(ctx, s.cs, desc)
		if errdefs.IsNotFound(err) {
			return nil, image.ErrSkipDesc
		}
		if err != nil {
			return nil, err
		}
		cfg, err := image.ReadConfig(ctx, s.cs, mf.Config)
		if errdefs.IsNotFound(err) {
			return nil, image.ErrSkipDesc
		}
		if err != nil {
			return nil, err
		}
		out = append(out, image.NormalizePlatform(cfg.Platform))
		return nil, nil
	})
	if err := image.Walk(ctx, walk, img.Target); err != nil {
		return nil, fmt.Errorf("image %q: platforms: %w", img.Name, err)
	}
	return out, nil
}

// Check tells, like ctr images check, whether img is complete for
// platform: available is false when not even its manifest is there;
// required are the config and layers of the manifest, split into present
// and missing.
func (s *Service) Check(ctx context.Context, img meta.Image, platform image.Matcher) (available bool, required, present, missing []ocispec.Descriptor, err error) {
	mf, err := image.Manifest(ctx, s.cs, img.Target, platform)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, []ocispec.Descriptor{img.Target}, nil, []ocispec.Descriptor{img.Target}, nil
		}
		return false, nil, nil, nil, fmt.Errorf("image %q: check: %w", img.Name, err)
	}
	required = append([]ocispec.Descriptor{mf.Config}, mf.Layers...)
	for _, desc := range required {
		_, err := s.cs.Info(ctx, desc.Digest)
		switch {
		case err == nil:
			present = append(present, desc)
		case errdefs.IsNotFound(err):
			missing = append(missing, desc)
		default:
			return false, nil, nil, nil, fmt.Errorf("image %q: check %s: %w", img.Name, desc.Digest, err)
		}
	}
	return true, required, present, missing, nil
}
