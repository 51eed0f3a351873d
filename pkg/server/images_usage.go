package server

import (
	"context"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	api "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// usage returns the usage of every image of list by name: its content
// size and platforms, and with unpacked the size of its snapshots. Names
// of one target (tags of one image) share one walk.
func (s *imagesService) usage(ctx context.Context, list []meta.Image, unpacked bool) (map[string]*api.ImageUsage, error) {
	out := make(map[string]*api.ImageUsage, len(list))
	byTarget := map[digest.Digest]*api.ImageUsage{}
	for _, img := range list {
		u, ok := byTarget[img.Target.Digest]
		if !ok {
			var err error
			if u, err = s.imageUsage(ctx, img, unpacked); err != nil {
				return nil, err
			}
			byTarget[img.Target.Digest] = u
		}
		out[img.Name] = u
	}
	return out, nil
}

func (s *imagesService) imageUsage(ctx context.Context, img meta.Image, unpacked bool) (*api.ImageUsage, error) {
	size, err := s.svc.Size(ctx, img, unpacked)
	if err != nil {
		return nil, err
	}
	u := &api.ImageUsage{ContentSize: size.Content, UnpackedSize: size.Unpacked}
	ps, err := s.svc.Platforms(ctx, img)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if f := image.FormatPlatform(p); !slices.Contains(u.Platforms, f) {
			u.Platforms = append(u.Platforms, f)
		}
	}
	return u, nil
}

// Check checks every image matching the filters for the platforms of the
// request (none: the daemon's).
func (s *imagesService) Check(ctx context.Context, req *api.CheckImagesRequest) (*api.CheckImagesResponse, error) {
	matcher := image.Only(image.DefaultPlatform())
	if len(req.GetPlatforms()) > 0 {
		var ps []ocispec.Platform
		for _, p := range req.GetPlatforms() {
			pl, err := image.ParsePlatform(p)
			if err != nil {
				return nil, err
			}
			ps = append(ps, pl)
		}
		matcher = image.Ordered(ps...)
	}
	list, err := s.svc.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.CheckImagesResponse{Images: make([]*api.ImageCheck, 0, len(list))}
	for _, img := range list {
		available, required, present, missing, err := s.svc.Check(ctx, img, matcher)
		if err != nil {
			return nil, err
		}
		resp.Images = append(resp.Images, &api.ImageCheck{
			Image:        convert.ImageToProto(img),
			Available:    available,
			Required:     int32(len(required)),
			Present:      int32(len(present)),
			RequiredSize: sumSizes(required),
			PresentSize:  sumSizes(present),
			Missing:      convert.DescriptorsToProto(missing),
		})
	}
	return resp, nil
}

func sumSizes(descs []ocispec.Descriptor) int64 {
	var n int64
	for _, d := range descs {
		n += d.Size
	}
	return n
}
