package cri

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// PullImage pulls the image, with the request's credentials for its
// registry, and returns its ID: the digest of its config.
func (s *Service) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("pull: image reference must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var opts []imageservice.PullOpt
	if a := req.GetAuth(); a != nil {
		cred, err := credential(a)
		if err != nil {
			return nil, err
		}
		opts = append(opts, imageservice.WithCredential(cred))
	}
	img, err := s.images.Pull(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: img.ConfigDigest.String()}, nil
}

// credential translates the CRI's AuthConfig.
func credential(a *runtime.AuthConfig) (remote.Credential, error) {
	c := remote.Credential{Username: a.GetUsername(), Password: a.GetPassword(), RefreshToken: a.GetIdentityToken(), AccessToken: a.GetRegistryToken()}
	if a.GetAuth() != "" {
		b, err := base64.StdEncoding.DecodeString(a.GetAuth())
		if err != nil {
			return c, fmt.Errorf("pull: auth is not base64: %w", errdefs.ErrInvalidArgument)
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return c, fmt.Errorf("pull: auth is not user:password: %w", errdefs.ErrInvalidArgument)
		}
		c.Username, c.Password = user, pass
	}
	return c, nil
}

// lookupImage finds the images a CRI image spec names: an ID (the config
// digest, "sha256:<hex>" or the bare hex), a name ("busybox",
// "registry/repo:tag") or a digest reference ("repo@sha256:..." naming the
// manifest or index). All the names of the image are returned, sorted;
// NotFound if none.
func (s *Service) lookupImage(ctx context.Context, ref string) ([]meta.Image, error) {
	if ref == "" {
		return nil, fmt.Errorf("image must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if id, ok := imageID(ref); ok {
		imgs, err := s.db.Images().ListByConfig(ctx, id)
		if err != nil || len(imgs) > 0 {
			return imgs, err
		}
		if !strings.Contains(ref, ":") {
			// 64 hex digits: an ID, never a repository name.
			return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
		}
	}
	found, err := s.findImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	if found.ConfigDigest == "" {
		return []meta.Image{found}, nil
	}
	return s.db.Images().ListByConfig(ctx, found.ConfigDigest)
}

// findImage finds the image record a name or a digest reference names;
// NotFound if none.
func (s *Service) findImage(ctx context.Context, ref string) (meta.Image, error) {
	r, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return meta.Image{}, err
	}
	if r.Digest != "" {
		all, err := s.db.Images().List(ctx, "target.digest=="+r.Digest.String())
		if err != nil {
			return meta.Image{}, err
		}
		for i := range all {
			if named, err := reference.Parse(all[i].Name); err == nil && named.Name() == r.Name() {
				return all[i], nil
			}
		}
	} else if img, err := s.db.Images().Get(ctx, r.String()); err == nil {
		return img, nil
	} else if !errdefs.IsNotFound(err) {
		return meta.Image{}, err
	}
	return meta.Image{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// imageID returns the config digest an image spec names, if it is an ID.
func imageID(ref string) (digest.Digest, bool) {
	if d, err := digest.Parse(ref); err == nil {
		return d, true
	}
	if len(ref) == 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		return digest.NewDigestFromEncoded(digest.SHA256, ref), true
	}
	return "", false
}

// criImage describes the image whose names are imgs (one config digest).
func (s *Service) criImage(ctx context.Context, imgs []meta.Image) (*runtime.Image, error) {
	first := imgs[0]
	out := &runtime.Image{Id: first.ConfigDigest.String(), Spec: &runtime.ImageSpec{Image: first.ConfigDigest.String()}}
	out.RepoTags, out.RepoDigests = repoNames(imgs)
	size, user, err := s.imageContent(ctx, first)
	if err != nil {
		return nil, err
	}
	out.Size = uint64(size)
	if u, _, _ := strings.Cut(user, ":"); u != "" {
		if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
			out.Uid = &runtime.Int64Value{Value: uid}
		} else {
			out.Username = u
		}
	}
	out.Pinned = s.pinned(ctx, first)
	return out, nil
}

// repoNames returns the tags and the repo digests ("repo@sha256:...") of
// the names of an image, sorted.
func repoNames(imgs []meta.Image) (tags, digests []string) {
	seen := map[string]bool{}
	for _, img := range imgs {
		r, err := reference.Parse(img.Name)
		if err != nil {
			continue
		}
		if r.Tag != "" && r.Digest == "" {
			tags = append(tags, r.String())
		}
		if d := r.Name() + "@" + img.Target.Digest.String(); !seen[d] {
			seen[d] = true
			digests = append(digests, d)
		}
	}
	sort.Strings(tags)
	sort.Strings(digests)
	return tags, digests
}

// pinned reports whether img is the sandbox image. A sandbox image named
// by name needs only its record: every name of an image has its config
// digest.
func (s *Service) pinned(ctx context.Context, img meta.Image) bool {
	if img.ConfigDigest == "" {
		return false
	}
	ref := s.cfg.SandboxImage
	if _, ok := imageID(ref); ok || ref == "" {
		imgs, err := s.lookupImage(ctx, ref)
		return err == nil && len(imgs) > 0 && imgs[0].ConfigDigest == img.ConfigDigest
	}
	found, err := s.findImage(ctx, ref)
	return err == nil && found.ConfigDigest == img.ConfigDigest
}

// ImageStatus returns the status of an image; an absent image is an empty
// response, not an error.
func (s *Service) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	imgs, err := s.lookupImage(ctx, req.GetImage().GetImage())
	if errdefs.IsNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := s.criImage(ctx, imgs)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: out}
	if req.GetVerbose() {
		resp.Info = map[string]string{"names": strings.Join(names(imgs), ",")}
	}
	return resp, nil
}

func names(imgs []meta.Image) []string {
	var out []string
	for _, img := range imgs {
		out = append(out, img.Name)
	}
	return out
}

// ListImages lists the images, one entry per config digest.
func (s *Service) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	all, err := s.db.Images().List(ctx)
	if err != nil {
		return nil, err
	}
	byConfig := map[digest.Digest][]meta.Image{}
	var order []digest.Digest
	for _, img := range all {
		if img.ConfigDigest == "" {
			continue // not pulled for the CRI's platform
		}
		if _, ok := byConfig[img.ConfigDigest]; !ok {
			order = append(order, img.ConfigDigest)
		}
		byConfig[img.ConfigDigest] = append(byConfig[img.ConfigDigest], img)
	}
	var filter []meta.Image
	if f := req.GetFilter().GetImage().GetImage(); f != "" {
		if filter, err = s.lookupImage(ctx, f); errdefs.IsNotFound(err) {
			return &runtime.ListImagesResponse{}, nil
		} else if err != nil {
			return nil, err
		}
	}
	resp := &runtime.ListImagesResponse{}
	for _, d := range order {
		if len(filter) > 0 && filter[0].ConfigDigest != d {
			continue
		}
		img, err := s.criImage(ctx, byConfig[d])
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // an image whose content went away meanwhile
			}
			return nil, err
		}
		resp.Images = append(resp.Images, img)
	}
	return resp, nil
}

// RemoveImage removes every name of the image; an absent image is no
// error. The sandbox image too: pinned is a recommendation to kubelet's
// image GC, and the next pod pulls it again.
func (s *Service) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	imgs, err := s.lookupImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtime.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if imgs[0].ConfigDigest != "" {
		if _, err := s.db.Images().DeleteByConfig(ctx, imgs[0].ConfigDigest); err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
		return &runtime.RemoveImageResponse{}, nil
	}
	for _, img := range imgs {
		if err := s.db.Images().Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	return &runtime.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the filesystem of the image store: the content and
// the snapshots.
func (s *Service) ImageFsInfo(ctx context.Context, req *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	usage, err := s.fsUsage(ctx)
	if err != nil {
		return nil, err
	}
	return &runtime.ImageFsInfoResponse{ImageFilesystems: usage, ContainerFilesystems: usage}, nil
}

// imageConfig returns the config of img for the host's platform.
func (s *Service) imageConfig(ctx context.Context, img meta.Image) (ocispec.Image, error) {
	return s.images.Config(ctx, img, image.DefaultPlatform())
}
