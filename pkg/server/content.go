package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/emptypb"
	"k8s.io/klog/v2"

	api "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

const (
	// readChunk is the most data one Read response carries.
	readChunk = 1 << 20
	// listBatch is the most infos one List response carries.
	listBatch = 100
	// abortTimeout bounds the abort of an ingest a Write stream left empty.
	abortTimeout = 10 * time.Second
)

// contentService serves api/services/content over meta's namespaced
// content store.
type contentService struct {
	api.UnimplementedContentServer
	store    content.Store
	ingested prometheus.Counter // bytes received by Write
}

func newContentService(store content.Store, reg prometheus.Registerer) (*contentService, error) {
	ingested := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cri_runtime_content_ingested_bytes_total",
		Help: "Bytes written into ingests through the content service.",
	})
	if err := reg.Register(ingested); err != nil {
		return nil, fmt.Errorf("register content metrics: %w", err)
	}
	return &contentService{store: store, ingested: ingested}, nil
}

// parseDigest validates a digest from a request.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

func (s *contentService) Info(ctx context.Context, req *api.InfoRequest) (*api.InfoResponse, error) {
	d, err := parseDigest(req.GetDigest())
	if err != nil {
		return nil, err
	}
	info, err := s.store.Info(ctx, d)
	if err != nil {
		return nil, err
	}
	return &api.InfoResponse{Info: convert.InfoToProto(info)}, nil
}

func (s *contentService) Update(ctx context.Context, req *api.UpdateRequest) (*api.UpdateResponse, error) {
	if _, err := parseDigest(req.GetInfo().GetDigest()); err != nil {
		return nil, err
	}
	info, err := s.store.Update(ctx, convert.InfoFromProto(req.GetInfo()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateResponse{Info: convert.InfoToProto(info)}, nil
}

// List collects the matching infos first and sends them afterwards, so that
// no store transaction waits on the network.
func (s *contentService) List(req *api.ListContentRequest, stream api.Content_ListServer) error {
	var infos []*api.Info
	err := s.store.Walk(stream.Context(), func(info content.Info) error {
		infos = append(infos, convert.InfoToProto(info))
		return nil
	}, req.GetFilters()...)
	if err != nil {
		return err
	}
	for len(infos) > 0 {
		n := min(len(infos), listBatch)
		if err := stream.Send(&api.ListContentResponse{Info: infos[:n]}); err != nil {
			return err
		}
		infos = infos[n:]
	}
	return nil
}

func (s *contentService) Delete(ctx context.Context, req *api.DeleteContentRequest) (*emptypb.Empty, error) {
	d, err := parseDigest(req.GetDigest())
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, s.store.Delete(ctx, d)
}

func (s *contentService) Read(req *api.ReadContentRequest, stream api.Content_ReadServer) error {
	ctx := stream.Context()
	d, err := parseDigest(req.GetDigest())
	if err != nil {
		return err
	}
	ra, err := s.store.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
	if err != nil {
		return err
	}
	defer ra.Close()
	off, end := req.GetOffset(), ra.Size()
	if off < 0 || off > end {
		return fmt.Errorf("read %s: offset %d outside [0, %d]: %w", d, off, end, errdefs.ErrInvalidArgument)
	}
	if size := req.GetSize(); size < 0 {
		return fmt.Errorf("read %s: negative size %d: %w", d, size, errdefs.ErrInvalidArgument)
	} else if size > 0 && off+size < end {
		end = off + size
	}
	buf := make([]byte, min(readChunk, end-off))
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := ra.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			// Send marshals before returning, so buf can be reused.
			if err := stream.Send(&api.ReadContentResponse{Offset: off, Data: buf[:n]}); err != nil {
				return err
			}
			off += int64(n)
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == end) {
			return fmt.Errorf("read %s at %d: %w", d, off, err)
		}
	}
	return nil
}

func (s *contentService) Status(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
	st, err := s.store.Status(ctx, req.GetRef())
	if err != nil {
		return nil, err
	}
	return &api.StatusResponse{Status: convert.StatusToProto(st)}, nil
}

func (s *contentService) ListStatuses(ctx context.Context, req *api.ListStatusesRequest) (*api.ListStatusesResponse, error) {
	list, err := s.store.ListStatuses(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.ListStatusesResponse{Statuses: make([]*api.Status, 0, len(list))}
	for _, st := range list {
		resp.Statuses = append(resp.Statuses, convert.StatusToProto(st))
	}
	return resp, nil
}

func (s *contentService) Abort(ctx context.Context, req *api.AbortRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.store.Abort(ctx, req.GetRef())
}

// Write drives one ingest: the first request opens the writer for its ref
// (holding the ref until the stream ends), each request gets one response,
// and a COMMIT ends the stream. See the proto for the actions. A stream
// that created its ingest and ends with no byte in it (a STAT of an
// unknown ref, a request refused) aborts it: a refused request leaves
// nothing behind.
func (s *contentService) Write(stream api.Content_WriteServer) error {
	ctx := stream.Context()
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkWriteRequest(req.GetRef(), req); err != nil {
		return err
	}
	w, err := s.openWriter(ctx, req)
	if err != nil {
		return err
	}
	defer s.closeWriter(ctx, w)
	for {
		resp, done, err := w.handle(ctx, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		if done {
			return nil
		}
		if req, err = stream.Recv(); errors.Is(err, io.EOF) {
			return nil // the client closed without committing: keep the ingest
		} else if err != nil {
			return err
		}
	}
}

// checkWriteRequest refuses a request that no ingest could perform,
// before anything is opened.
func checkWriteRequest(ref string, req *api.WriteContentRequest) error {
	switch a := req.GetAction(); {
	case a != api.WriteAction_STAT && a != api.WriteAction_WRITE && a != api.WriteAction_COMMIT:
		return fmt.Errorf("write %q: unknown action %v: %w", ref, a, errdefs.ErrInvalidArgument)
	case req.GetOffset() < 0:
		return fmt.Errorf("write %q: negative offset %d: %w", ref, req.GetOffset(), errdefs.ErrInvalidArgument)
	case req.GetTotal() < 0:
		return fmt.Errorf("write %q: negative total %d: %w", ref, req.GetTotal(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// ingestWriter is the server side of one Write stream.
type ingestWriter struct {
	content.Writer
	ref      string
	offset   int64 // bytes in the ingest
	ingested prometheus.Counter
	created  bool // the stream created the ingest
	done     bool // committed
}

func (s *contentService) openWriter(ctx context.Context, req *api.WriteContentRequest) (*ingestWriter, error) {
	ref := req.GetRef()
	if ref == "" {
		return nil, fmt.Errorf("write: the first request must name a ref: %w", errdefs.ErrInvalidArgument)
	}
	_, err := s.store.Status(ctx, ref)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	created := err != nil
	desc := ocispec.Descriptor{Size: req.GetTotal()}
	if req.GetExpected() != "" {
		d, err := parseDigest(req.GetExpected())
		if err != nil {
			return nil, fmt.Errorf("write %q: %w", ref, err)
		}
		desc.Digest = d
	}
	wr, err := s.store.Writer(ctx, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		return nil, err
	}
	st, err := wr.Status()
	if err != nil {
		wr.Close()
		return nil, err
	}
	return &ingestWriter{Writer: wr, ref: ref, offset: st.Offset, ingested: s.ingested, created: created}, nil
}

// closeWriter releases the ref at the end of the stream, and aborts an
// ingest that the stream created and left empty.
func (s *contentService) closeWriter(ctx context.Context, w *ingestWriter) {
	_ = w.Close()
	if w.done || !w.created || w.offset != 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := s.store.Abort(cctx, w.ref); err != nil && !errdefs.IsNotFound(err) {
		klog.FromContext(ctx).Error(err, "Abort of an empty ingest a Write stream left", "ref", w.ref)
	}
}

// handle performs one request; done is true once the ingest is committed.
func (w *ingestWriter) handle(ctx context.Context, req *api.WriteContentRequest) (resp *api.WriteContentResponse, done bool, err error) {
	if req.GetRef() != "" && req.GetRef() != w.ref {
		return nil, false, fmt.Errorf("write %q: request names another ref %q: %w", w.ref, req.GetRef(), errdefs.ErrInvalidArgument)
	}
	if err := checkWriteRequest(w.ref, req); err != nil {
		return nil, false, err
	}
	action := req.GetAction()
	if action == api.WriteAction_STAT {
		return w.stat(action)
	}
	if action == api.WriteAction_WRITE || len(req.GetData()) > 0 {
		if err := w.seek(req.GetOffset()); err != nil {
			return nil, false, err
		}
	}
	if len(req.GetData()) > 0 {
		n, err := w.Write(req.GetData())
		w.offset += int64(n)
		w.ingested.Add(float64(n))
		if err != nil {
			return nil, false, fmt.Errorf("write %q at %d: %w", w.ref, w.offset, err)
		}
	}
	if action == api.WriteAction_WRITE {
		return &api.WriteContentResponse{Action: action, Offset: w.offset, Digest: w.Digest().String()}, false, nil
	}
	return w.commit(ctx, req)
}

// seek accepts writes at the ingest's offset, and at 0 to restart it.
func (w *ingestWriter) seek(offset int64) error {
	switch {
	case offset == w.offset:
		return nil
	case offset == 0:
		if err := w.Truncate(0); err != nil {
			return err
		}
		w.offset = 0
		return nil
	}
	return fmt.Errorf("write %q at offset %d: the ingest is at offset %d: %w", w.ref, offset, w.offset, errdefs.ErrFailedPrecondition)
}

func (w *ingestWriter) stat(action api.WriteAction) (*api.WriteContentResponse, bool, error) {
	st, err := w.Status()
	if err != nil {
		return nil, false, err
	}
	w.offset = st.Offset
	return &api.WriteContentResponse{
		Action:    action,
		StartedAt: convert.Timestamp(st.StartedAt),
		UpdatedAt: convert.Timestamp(st.UpdatedAt),
		Offset:    st.Offset,
		Total:     st.Total,
		Digest:    w.Digest().String(),
		Expected:  st.Expected.String(),
	}, false, nil
}

func (w *ingestWriter) commit(ctx context.Context, req *api.WriteContentRequest) (*api.WriteContentResponse, bool, error) {
	var expected digest.Digest
	if req.GetExpected() != "" {
		d, err := parseDigest(req.GetExpected())
		if err != nil {
			return nil, false, fmt.Errorf("commit %q: %w", w.ref, err)
		}
		expected = d
	}
	var opts []content.Opt
	if len(req.GetLabels()) > 0 {
		opts = append(opts, content.WithLabels(req.GetLabels()))
	}
	dgst := w.Digest()
	if err := w.Commit(ctx, req.GetTotal(), expected, opts...); err != nil {
		return nil, false, err
	}
	w.done = true
	return &api.WriteContentResponse{Action: api.WriteAction_COMMIT, Offset: w.offset, Total: w.offset, Digest: dgst.String()}, true, nil
}
