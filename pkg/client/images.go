package client

import (
	"context"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	api "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// ImageStore mirrors meta.ImageStore over the images service.
type ImageStore struct {
	client api.ImagesClient
}

// Get returns the image name; NotFound if absent.
func (s *ImageStore) Get(ctx context.Context, name string) (meta.Image, error) {
	resp, err := s.client.Get(ctx, &api.GetImageRequest{Name: name})
	if err != nil {
		return meta.Image{}, err
	}
	return convert.ImageFromProto(resp.GetImage()), nil
}

// List returns the images matching any of filters.
func (s *ImageStore) List(ctx context.Context, filters ...string) ([]meta.Image, error) {
	resp, err := s.client.List(ctx, &api.ListImagesRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	list := make([]meta.Image, 0, len(resp.GetImages()))
	for _, img := range resp.GetImages() {
		list = append(list, convert.ImageFromProto(img))
	}
	return list, nil
}

// Create records img; AlreadyExists if its name is taken.
func (s *ImageStore) Create(ctx context.Context, img meta.Image) (meta.Image, error) {
	resp, err := s.client.Create(ctx, &api.CreateImageRequest{Image: convert.ImageToProto(img)})
	if err != nil {
		return meta.Image{}, err
	}
	return convert.ImageFromProto(resp.GetImage()), nil
}

// Update changes the fields of img named by fieldpaths (none: all).
func (s *ImageStore) Update(ctx context.Context, img meta.Image, fieldpaths ...string) (meta.Image, error) {
	req := &api.UpdateImageRequest{Image: convert.ImageToProto(img)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return meta.Image{}, err
	}
	return convert.ImageFromProto(resp.GetImage()), nil
}

// Delete removes the image record.
func (s *ImageStore) Delete(ctx context.Context, name string, opts ...DeleteOpt) error {
	_, err := s.Remove(ctx, name, opts...)
	return err
}

// Remove removes the image record. With SynchronousDelete it returns,
// once a collection ran, what of the image it could not free and what
// holds it (meta.Holders).
func (s *ImageStore) Remove(ctx context.Context, name string, opts ...DeleteOpt) ([]meta.Holder, error) {
	resp, err := s.client.Delete(ctx, &api.DeleteImageRequest{Name: name, Sync: deleteOpts(opts).sync})
	if err != nil {
		return nil, err
	}
	held := make([]meta.Holder, 0, len(resp.GetHeld()))
	for _, ph := range resp.GetHeld() {
		h := meta.Holder{Kind: ph.GetKind(), ID: ph.GetId(), Snapshots: ph.GetSnapshots()}
		if h.Kind == meta.HolderLease {
			h.Lease = meta.Lease{ID: ph.GetId(), Labels: ph.GetLabels(), ExpiresAt: convert.Time(ph.GetExpiresAt())}
		}
		for _, d := range ph.GetContent() {
			h.Content = append(h.Content, digest.Digest(d))
		}
		held = append(held, h)
	}
	return held, nil
}

// ImageUsage is an image and what it occupies on disk.
type ImageUsage struct {
	meta.Image
	// ContentSize is the bytes of its blobs in the content store.
	ContentSize int64
	// UnpackedSize is the bytes of its snapshots; -1 when not asked for.
	UnpackedSize int64
	// Platforms are those of its manifests, "os/arch[/variant]".
	Platforms []string
}

// ListUsage is List with the usage of each image: content size and
// platforms, and with unpacked the size of the snapshots (which walks
// their files: costly). Plain List is much cheaper for many images.
func (s *ImageStore) ListUsage(ctx context.Context, unpacked bool, filters ...string) ([]ImageUsage, error) {
	resp, err := s.client.List(ctx, &api.ListImagesRequest{Filters: filters, Usage: true, UnpackedUsage: unpacked})
	if err != nil {
		return nil, err
	}
	list := make([]ImageUsage, 0, len(resp.GetImages()))
	for _, img := range resp.GetImages() {
		u := resp.GetUsage()[img.GetName()]
		list = append(list, ImageUsage{
			Image:        convert.ImageFromProto(img),
			ContentSize:  u.GetContentSize(),
			UnpackedSize: u.GetUnpackedSize(),
			Platforms:    u.GetPlatforms(),
		})
	}
	return list, nil
}

// ImageCheck is the completeness of an image for a platform.
type ImageCheck struct {
	Image meta.Image
	// Available is false when not even the platform's manifest is there.
	Available bool
	// Required blobs (config and layers of the manifest), how many are
	// present, their bytes, and the missing ones.
	Required, Present         int
	RequiredSize, PresentSize int64
	Missing                   []ocispec.Descriptor
}

// Complete reports whether every required blob is present.
func (c ImageCheck) Complete() bool { return c.Available && c.Present == c.Required }

// Check checks the images matching any of filters for platforms
// ("os/arch[/variant]", the first present wins; none: the daemon's).
func (s *ImageStore) Check(ctx context.Context, platforms []string, filters ...string) ([]ImageCheck, error) {
	resp, err := s.client.Check(ctx, &api.CheckImagesRequest{Filters: filters, Platforms: platforms})
	if err != nil {
		return nil, err
	}
	out := make([]ImageCheck, 0, len(resp.GetImages()))
	for _, c := range resp.GetImages() {
		out = append(out, ImageCheck{
			Image:        convert.ImageFromProto(c.GetImage()),
			Available:    c.GetAvailable(),
			Required:     int(c.GetRequired()),
			Present:      int(c.GetPresent()),
			RequiredSize: c.GetRequiredSize(),
			PresentSize:  c.GetPresentSize(),
			Missing:      convert.DescriptorsFromProto(c.GetMissing()),
		})
	}
	return out, nil
}
