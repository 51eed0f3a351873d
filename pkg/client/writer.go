package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	api "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// writeChunk is the most data one WRITE request carries.
const writeChunk = 1 << 20

// writer is a content.Writer over a Write stream. Every method is one
// request and its response; the daemon holds the ref until the stream
// ends. Any error ends the stream; after a commit that failed verification
// the next call opens a new one, so that the writer stays usable (to
// Truncate(0) and write again), as the content.Writer contract says.
// Like every content.Writer it is not safe for concurrent use.
type writer struct {
	ref     string
	ctx     context.Context // of Writer; each stream's ctx derives from it
	client  api.ContentClient
	opening *api.WriteContentRequest // the STAT that opens a stream

	stream api.Content_WriteClient
	cancel context.CancelFunc // cancels the stream's ctx
	ended  bool               // the stream is over: committed, closed or failed
	reopen bool               // ended by a failed verification: open anew

	// The state of the ingest, from the last response.
	offset    int64
	total     int64
	digest    digest.Digest
	expected  digest.Digest
	startedAt time.Time
	updatedAt time.Time
}

// roundTrip sends req and returns its response, recording the state it
// reports. Any error ends the stream: the daemon has released the ref.
func (w *writer) roundTrip(req *api.WriteContentRequest) (*api.WriteContentResponse, error) {
	if w.ended && w.reopen {
		w.reopen = false
		if err := w.connect(); err != nil {
			return nil, err
		}
	}
	if w.ended {
		return nil, fmt.Errorf("writer %q: closed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	err := w.stream.Send(req)
	if err != nil && !errors.Is(err, io.EOF) {
		w.fail()
		return nil, err
	}
	// On io.EOF from Send, the daemon ended the stream: Recv has its error.
	resp, err := w.stream.Recv()
	if err != nil {
		w.fail()
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("writer %q: the daemon ended the stream: %w", w.ref, errdefs.ErrUnavailable)
		}
		return nil, err
	}
	w.offset, w.digest = resp.GetOffset(), digest.Digest(resp.GetDigest())
	if resp.GetAction() == api.WriteAction_STAT {
		w.total, w.expected = resp.GetTotal(), digest.Digest(resp.GetExpected())
		w.startedAt, w.updatedAt = convert.Time(resp.GetStartedAt()), convert.Time(resp.GetUpdatedAt())
	}
	return resp, nil
}

func (w *writer) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		chunk := p[n:min(len(p), n+writeChunk)]
		if _, err := w.roundTrip(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: w.offset, Data: chunk}); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

func (w *writer) Digest() digest.Digest { return w.digest }

func (w *writer) Status() (content.Status, error) {
	if _, err := w.roundTrip(&api.WriteContentRequest{Action: api.WriteAction_STAT}); err != nil {
		return content.Status{}, err
	}
	return content.Status{
		Ref:       w.ref,
		Offset:    w.offset,
		Total:     w.total,
		Expected:  w.expected,
		StartedAt: w.startedAt,
		UpdatedAt: w.updatedAt,
	}, nil
}

// connect opens a stream for the ref with the opening STAT.
func (w *writer) connect() error {
	ctx, cancel := context.WithCancel(w.ctx)
	stream, err := w.client.Write(ctx)
	if err != nil {
		cancel()
		return err
	}
	w.stream, w.cancel, w.ended = stream, cancel, false
	_, err = w.roundTrip(w.opening)
	return err
}

// Truncate restarts the ingest; only size 0 is supported.
func (w *writer) Truncate(size int64) error {
	if size != 0 {
		return fmt.Errorf("writer %q: truncate to %d: only 0 is supported: %w", w.ref, size, errdefs.ErrNotImplemented)
	}
	_, err := w.roundTrip(&api.WriteContentRequest{Action: api.WriteAction_WRITE, Offset: 0})
	return err
}

// Commit asks the daemon to verify and commit the ingest, then waits for
// the stream to end. Cancelling ctx cancels the stream.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if size < 0 {
		return fmt.Errorf("commit %q: size %d: must not be negative: %w", w.ref, size, errdefs.ErrInvalidArgument)
	}
	stop := context.AfterFunc(ctx, w.cancel)
	defer stop()
	var info content.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return err
		}
	}
	req := &api.WriteContentRequest{Action: api.WriteAction_COMMIT, Total: size, Labels: info.Labels}
	if expected != "" {
		req.Expected = expected.String()
	}
	if _, err := w.roundTrip(req); err != nil {
		w.reopen = errdefs.IsFailedPrecondition(err)
		return err
	}
	return w.end()
}

// Close ends the stream without committing; the ingest stays for a resume.
// It returns once the daemon has released the ref.
func (w *writer) Close() error {
	w.reopen = false
	if w.ended {
		return nil
	}
	if err := w.stream.CloseSend(); err != nil {
		w.fail()
		return err
	}
	return w.end()
}

// end waits for the daemon to end the stream.
func (w *writer) end() error {
	w.ended = true
	defer w.cancel()
	for {
		if _, err := w.stream.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// fail marks the stream over after an error and releases it.
func (w *writer) fail() {
	w.ended = true
	w.cancel()
}
