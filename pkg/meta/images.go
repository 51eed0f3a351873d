package meta

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ImageStore stores images: names pointing at a target descriptor. An
// image is a GC root for its target and for its label references.
type ImageStore struct{ db *DB }

var imageKind = recordKind[Image]{noun: "image", bucket: bucketKeyImages, read: readImage, adapt: adaptImage}

// Images returns the image store.
func (db *DB) Images() *ImageStore { return &ImageStore{db: db} }

// Get returns the image name; NotFound if there is none.
func (s *ImageStore) Get(ctx context.Context, name string) (Image, error) {
	return imageKind.get(ctx, s.db, name)
}

// List returns the images matching any of fs (fields: name, target.digest,
// target.mediatype, target.size, config.digest, labels.<key>), sorted by
// name.
func (s *ImageStore) List(ctx context.Context, fs ...string) ([]Image, error) {
	return imageKind.list(ctx, s.db, fs)
}

func adaptImage(img Image) filters.Adaptor {
	return filters.Map(fields(
		"name", img.Name,
		"target.digest", img.Target.Digest.String(),
		"target.mediatype", img.Target.MediaType,
		"target.size", strconv.FormatInt(img.Target.Size, 10),
		"config.digest", img.ConfigDigest.String(),
	), img.Labels)
}

// Create stores img; AlreadyExists if its name is taken, NotFound if its
// target is not in the namespace's content.
func (s *ImageStore) Create(ctx context.Context, img Image) (Image, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Image{}, err
	}
	if err := validateImage(img); err != nil {
		return Image{}, err
	}
	err = s.db.update(ctx, func(t *tx) error {
		ibkt, err := createNSBucket(t.Tx, ns, bucketKeyImages)
		if err != nil {
			return err
		}
		bkt, err := ibkt.CreateBucket([]byte(img.Name))
		if err == bolt.ErrBucketExists {
			return fmt.Errorf("image %q: %w", img.Name, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		if err := checkTarget(t.Tx, ns, img); err != nil {
			return err
		}
		img.CreatedAt = time.Now().UTC()
		img.UpdatedAt = img.CreatedAt
		if err := writeImage(bkt, img); err != nil {
			return err
		}
		if err := indexConfig(t.Tx, ns, img.Name, "", img.ConfigDigest); err != nil {
			return err
		}
		t.publish(ns, "/images/create", &eventsv1.ImageCreate{Name: img.Name, Labels: img.Labels})
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	return img, nil
}

// Update changes the fields of the stored image img.Name named by
// fieldpaths: "labels", "labels.<key>", "target", "config" (the config
// digest), "annotations" (those of the target) or "annotations.<key>".
// None means labels, target and config. Other paths are InvalidArgument;
// NotFound if there is no such image.
func (s *ImageStore) Update(ctx context.Context, img Image, fieldpaths ...string) (Image, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Image{}, err
	}
	if img.Name == "" {
		return Image{}, fmt.Errorf("image name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	var updated Image
	err = s.db.update(ctx, func(t *tx) error {
		bkt := nsBucket(t.Tx, ns, bucketKeyImages, []byte(img.Name))
		if bkt == nil {
			return fmt.Errorf("image %q: %w", img.Name, errdefs.ErrNotFound)
		}
		updated = readImage(img.Name, bkt)
		before, beforeLabels, beforeConfig := updated.Target.Digest, maps.Clone(updated.Labels), updated.ConfigDigest
		if err := applyImagePaths(&updated, img, fieldpaths); err != nil {
			return err
		}
		if err := validateImage(updated); err != nil {
			return err
		}
		if updated.Target.Digest != before {
			if err := checkTarget(t.Tx, ns, updated); err != nil {
				return err
			}
		}
		// The old target or a label's reference may now be garbage.
		t.dirty = updated.Target.Digest != before || droppedRefs(beforeLabels, updated.Labels)
		updated.UpdatedAt = time.Now().UTC()
		if err := writeImage(bkt, updated); err != nil {
			return err
		}
		if err := indexConfig(t.Tx, ns, img.Name, beforeConfig, updated.ConfigDigest); err != nil {
			return err
		}
		t.publish(ns, "/images/update", &eventsv1.ImageUpdate{Name: img.Name, Labels: updated.Labels})
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	return updated, nil
}

func applyImagePaths(dst *Image, src Image, fieldpaths []string) error {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels", "target", "config"}
	}
	for _, p := range fieldpaths {
		if labels.ApplyPath(&dst.Labels, src.Labels, "labels", p) {
			continue
		}
		if p == "target" {
			dst.Target = src.Target
			continue
		}
		if p == "config" {
			dst.ConfigDigest = src.ConfigDigest
			continue
		}
		if p == "annotations" || strings.HasPrefix(p, "annotations.") {
			// The same rules as labels, on the target's annotations.
			labels.ApplyPath(&dst.Target.Annotations, src.Target.Annotations, "annotations", p)
			continue
		}
		return fmt.Errorf("image %q: cannot update field %q: %w", src.Name, p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Delete removes the image name; NotFound if there is none. With
// SynchronousDelete it returns after a collection that started after the
// delete.
func (s *ImageStore) Delete(ctx context.Context, name string, opts ...DeleteOpt) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	err = s.db.update(ctx, func(t *tx) error { return deleteImage(t, ns, name) })
	if err != nil {
		return err
	}
	return s.db.afterDelete(ctx, opts)
}

// ListByConfig returns the images whose config digest is dgst (the CRI's
// image ID), sorted by name; none is not an error.
func (s *ImageStore) ListByConfig(ctx context.Context, dgst digest.Digest) ([]Image, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	var list []Image
	err = s.db.view(ctx, func(btx *bolt.Tx) error {
		for _, name := range configNames(btx, ns, dgst) {
			if bkt := nsBucket(btx, ns, bucketKeyImages, []byte(name)); bkt != nil {
				list = append(list, readImage(name, bkt))
			}
		}
		return nil
	})
	return list, err
}

// DeleteByConfig removes, in one transaction, every image whose config
// digest is dgst, and returns their names; NotFound if there is none.
// SynchronousDelete works as for Delete.
func (s *ImageStore) DeleteByConfig(ctx context.Context, dgst digest.Digest, opts ...DeleteOpt) ([]string, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	err = s.db.update(ctx, func(t *tx) error {
		names = configNames(t.Tx, ns, dgst)
		if len(names) == 0 {
			return fmt.Errorf("image with config %s: %w", dgst, errdefs.ErrNotFound)
		}
		for _, name := range names {
			if err := deleteImage(t, ns, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return names, s.db.afterDelete(ctx, opts)
}

func deleteImage(t *tx, ns, name string) error {
	ibkt := nsBucket(t.Tx, ns, bucketKeyImages)
	if ibkt == nil || ibkt.Bucket([]byte(name)) == nil {
		return fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	config := readImage(name, ibkt.Bucket([]byte(name))).ConfigDigest
	if err := ibkt.DeleteBucket([]byte(name)); err != nil {
		return err
	}
	if err := indexConfig(t.Tx, ns, name, config, ""); err != nil {
		return err
	}
	t.dirty = true
	t.publish(ns, "/images/delete", &eventsv1.ImageDelete{Name: name})
	return nil
}

// indexConfig moves name from the index entry of config before to that of
// after, in the namespace's imageconfigs bucket; either may be empty.
func indexConfig(btx *bolt.Tx, ns, name string, before, after digest.Digest) error {
	if before == after {
		return nil
	}
	if before != "" {
		if cbkt := nsBucket(btx, ns, bucketKeyImageConfigs); cbkt != nil {
			if dbkt := cbkt.Bucket([]byte(before)); dbkt != nil {
				if err := dbkt.Delete([]byte(name)); err != nil {
					return err
				}
				if k, _ := dbkt.Cursor().First(); k == nil {
					if err := cbkt.DeleteBucket([]byte(before)); err != nil {
						return err
					}
				}
			}
		}
	}
	if after == "" {
		return nil
	}
	dbkt, err := createNSBucket(btx, ns, bucketKeyImageConfigs, []byte(after))
	if err != nil {
		return err
	}
	return dbkt.Put([]byte(name), nil)
}

// configNames lists the names the index holds for the config dgst.
func configNames(btx *bolt.Tx, ns string, dgst digest.Digest) []string {
	var names []string
	if dbkt := nsBucket(btx, ns, bucketKeyImageConfigs, []byte(dgst)); dbkt != nil {
		_ = dbkt.ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	}
	return names
}

// validateImageName checks that an image name is a usable reference: not
// empty and without control characters or spaces.
func validateImageName(name string) error {
	if err := validateKey("image name", name); err != nil {
		return err
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("image name %q has invalid character %q: %w", name, r, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func validateImage(img Image) error {
	if err := validateImageName(img.Name); err != nil {
		return err
	}
	if err := validateLabels(img.Labels); err != nil {
		return fmt.Errorf("image %q: %w", img.Name, err)
	}
	if img.ConfigDigest != "" {
		if err := img.ConfigDigest.Validate(); err != nil {
			return fmt.Errorf("image %q: config digest %q: %w: %w", img.Name, img.ConfigDigest, err, errdefs.ErrInvalidArgument)
		}
	}
	return validateTarget(img.Name, img.Target)
}

// checkTarget checks that the image's target is in the namespace's
// content: an image is only ever created over what was fetched.
func checkTarget(btx *bolt.Tx, ns string, img Image) error {
	if !hasBlob(btx, ns, img.Target.Digest) {
		return fmt.Errorf("image %q: target content %s: %w", img.Name, img.Target.Digest, errdefs.ErrNotFound)
	}
	return nil
}

func validateTarget(name string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("image %q: target digest %q: %w: %w", name, d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.MediaType == "" {
		return fmt.Errorf("image %q: target media type must not be empty: %w", name, errdefs.ErrInvalidArgument)
	}
	if d.Size < 0 {
		return fmt.Errorf("image %q: target size %d is negative: %w", name, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

func readImage(name string, bkt *bolt.Bucket) Image {
	img := Image{
		Name:         name,
		Labels:       readLabels(bkt),
		ConfigDigest: digest.Digest(bkt.Get(keyConfig)),
		CreatedAt:    readTime(bkt, keyCreatedAt),
		UpdatedAt:    readTime(bkt, keyUpdatedAt),
	}
	if tbkt := bkt.Bucket(bucketKeyTarget); tbkt != nil {
		img.Target = ocispec.Descriptor{
			MediaType:   string(tbkt.Get(keyMediaType)),
			Digest:      digest.Digest(tbkt.Get(keyDigest)),
			Size:        readInt(tbkt, keySize),
			Annotations: readStringMap(tbkt.Bucket(bucketKeyAnnotation)),
		}
	}
	return img
}

func writeImage(bkt *bolt.Bucket, img Image) error {
	if err := writeTimes(bkt, img.CreatedAt, img.UpdatedAt); err != nil {
		return err
	}
	if err := writeLabels(bkt, img.Labels); err != nil {
		return err
	}
	if err := putString(bkt, keyConfig, img.ConfigDigest.String()); err != nil {
		return err
	}
	tbkt, err := bkt.CreateBucketIfNotExists(bucketKeyTarget)
	if err != nil {
		return err
	}
	if err := tbkt.Put(keyDigest, []byte(img.Target.Digest)); err != nil {
		return err
	}
	if err := tbkt.Put(keyMediaType, []byte(img.Target.MediaType)); err != nil {
		return err
	}
	if err := putInt(tbkt, keySize, img.Target.Size); err != nil {
		return err
	}
	return writeStringMap(tbkt, bucketKeyAnnotation, maps.Clone(img.Target.Annotations))
}
