package server

import (
	"context"

	api "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// imagesService serves api/services/images: the records over meta's
// ImageStore, pulls, checks and usage over the image service
// (images_pull.go, images_usage.go).
type imagesService struct {
	api.UnimplementedImagesServer
	store *meta.ImageStore
	svc   *imageservice.Service
	// stopping ends when the daemon stops: pulls end then rather than
	// hold the stop up; what they fetched stays for the next pull.
	stopping context.Context
}

func (s *imagesService) Get(ctx context.Context, req *api.GetImageRequest) (*api.GetImageResponse, error) {
	img, err := s.svc.Get(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &api.GetImageResponse{Image: convert.ImageToProto(img)}, nil
}

func (s *imagesService) List(ctx context.Context, req *api.ListImagesRequest) (*api.ListImagesResponse, error) {
	list, err := s.svc.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.ListImagesResponse{Images: make([]*api.Image, 0, len(list))}
	for _, img := range list {
		resp.Images = append(resp.Images, convert.ImageToProto(img))
	}
	if req.GetUsage() || req.GetUnpackedUsage() {
		if resp.Usage, err = s.usage(ctx, list, req.GetUnpackedUsage()); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (s *imagesService) Create(ctx context.Context, req *api.CreateImageRequest) (*api.CreateImageResponse, error) {
	img, err := s.store.Create(ctx, convert.ImageFromProto(req.GetImage()))
	if err != nil {
		return nil, err
	}
	return &api.CreateImageResponse{Image: convert.ImageToProto(img)}, nil
}

func (s *imagesService) Update(ctx context.Context, req *api.UpdateImageRequest) (*api.UpdateImageResponse, error) {
	img, err := s.store.Update(ctx, convert.ImageFromProto(req.GetImage()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateImageResponse{Image: convert.ImageToProto(img)}, nil
}

func (s *imagesService) Delete(ctx context.Context, req *api.DeleteImageRequest) (*api.DeleteImageResponse, error) {
	held, err := s.svc.Remove(ctx, req.GetName(), req.GetSync())
	if err != nil {
		return nil, err
	}
	resp := &api.DeleteImageResponse{Held: make([]*api.Holder, 0, len(held))}
	for _, h := range held {
		ph := &api.Holder{Kind: h.Kind, Id: h.ID, Labels: h.Lease.Labels, Snapshots: h.Snapshots}
		if !h.Lease.ExpiresAt.IsZero() {
			ph.ExpiresAt = convert.Timestamp(h.Lease.ExpiresAt)
		}
		for _, d := range h.Content {
			ph.Content = append(ph.Content, d.String())
		}
		resp.Held = append(resp.Held, ph)
	}
	return resp, nil
}
