package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	api "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// contentStore is a content.Store over the content service.
type contentStore struct {
	client api.ContentClient
}

var _ content.Store = (*contentStore)(nil)

func (s *contentStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	resp, err := s.client.Info(ctx, &api.InfoRequest{Digest: dgst.String()})
	if err != nil {
		return content.Info{}, err
	}
	return convert.InfoFromProto(resp.GetInfo()), nil
}

func (s *contentStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	req := &api.UpdateRequest{Info: convert.InfoToProto(info)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return content.Info{}, err
	}
	return convert.InfoFromProto(resp.GetInfo()), nil
}

func (s *contentStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when fn stops the walk
	stream, err := s.client.List(ctx, &api.ListContentRequest{Filters: filters})
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
			if err := fn(convert.InfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

func (s *contentStore) Delete(ctx context.Context, dgst digest.Digest) error {
	_, err := s.client.Delete(ctx, &api.DeleteContentRequest{Digest: dgst.String()})
	return err
}

func (s *contentStore) Status(ctx context.Context, ref string) (content.Status, error) {
	resp, err := s.client.Status(ctx, &api.StatusRequest{Ref: ref})
	if err != nil {
		return content.Status{}, err
	}
	return convert.StatusFromProto(resp.GetStatus()), nil
}

func (s *contentStore) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	resp, err := s.client.ListStatuses(ctx, &api.ListStatusesRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	list := make([]content.Status, 0, len(resp.GetStatuses()))
	for _, st := range resp.GetStatuses() {
		list = append(list, convert.StatusFromProto(st))
	}
	return list, nil
}

func (s *contentStore) Abort(ctx context.Context, ref string) error {
	_, err := s.client.Abort(ctx, &api.AbortRequest{Ref: ref})
	return err
}

// ReaderAt checks that the blob exists and returns a reader that streams
// each ReadAt from the daemon.
func (s *contentStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	if desc.Size > 0 && desc.Size != info.Size {
		return nil, fmt.Errorf("blob %s: size %d, descriptor says %d: %w", desc.Digest, info.Size, desc.Size, errdefs.ErrFailedPrecondition)
	}
	return &readerAt{ctx: ctx, client: s.client, digest: desc.Digest, size: info.Size}, nil
}

// readerAt reads a blob through the Read stream. It keeps the ctx of
// ReaderAt, as io.ReaderAt has none.
type readerAt struct {
	ctx    context.Context
	client api.ContentClient
	digest digest.Digest
	size   int64
}

func (r *readerAt) Size() int64  { return r.size }
func (r *readerAt) Close() error { return nil }

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d: %w", r.digest, off, errdefs.ErrInvalidArgument)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	stream, err := r.client.Read(ctx, &api.ReadContentRequest{Digest: r.digest.String(), Offset: off, Size: want})
	if err != nil {
		return 0, err
	}
	n := 0
	for int64(n) < want {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		n += copy(p[n:want], resp.GetData())
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Writer opens the ingest over one Write stream: a STAT first, to hold the
// ref and learn where to resume.
func (s *contentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("writer: ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if wo.Desc.Size < 0 {
		return nil, fmt.Errorf("writer %q: expected size %d: must not be negative: %w", wo.Ref, wo.Desc.Size, errdefs.ErrInvalidArgument)
	}
	w := &writer{ref: wo.Ref, ctx: ctx, client: s.client, opening: &api.WriteContentRequest{
		Action: api.WriteAction_STAT, Ref: wo.Ref, Total: wo.Desc.Size, Expected: string(wo.Desc.Digest),
	}}
	if err := w.connect(); err != nil {
		return nil, err
	}
	return w, nil
}
