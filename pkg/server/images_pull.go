package server

import (
	"context"
	"fmt"
	"sync"

	api "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// Pull runs the image service's Pull under the stream's ctx: a client
// that goes away cancels it (the service stops the pull once no caller
// waits for it), and so does the daemon's stop. Progress events go
// through a pullQueue, so that a slow client never holds the pull up, and
// are sent by one goroutine.
func (s *imagesService) Pull(req *api.PullRequest, stream api.Images_PullServer) error {
	opts, err := pullOpts(req)
	if err != nil {
		return err
	}
	// A failed Send ends the pull too.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	if s.stopping != nil {
		defer context.AfterFunc(s.stopping, cancel)()
	}
	q := newPullQueue()
	sent := make(chan error, 1)
	go func() {
		err := q.send(ctx, stream)
		if err != nil {
			cancel()
		}
		sent <- err
	}()
	img, err := s.svc.Pull(ctx, req.GetRef(), append(opts, imageservice.WithProgress(q.push))...)
	q.close()
	if serr := <-sent; err == nil {
		err = serr
	}
	if err != nil && s.stopping != nil && s.stopping.Err() != nil {
		return fmt.Errorf("pull %s: the daemon is stopping: %w", req.GetRef(), errdefs.ErrUnavailable)
	}
	if err != nil {
		return err
	}
	return stream.Send(&api.PullResponse{Event: &api.PullResponse_Result{Result: pullResultToProto(img, q.summary())}})
}

// pullOpts translates the request's platforms and credential.
func pullOpts(req *api.PullRequest) ([]imageservice.PullOpt, error) {
	var opts []imageservice.PullOpt
	for _, ps := range req.GetPlatforms() {
		p, err := image.ParsePlatform(ps)
		if err != nil {
			return nil, err
		}
		opts = append(opts, imageservice.WithPlatform(p))
	}
	if req.GetAllPlatforms() {
		opts = append(opts, imageservice.WithAllPlatforms())
	}
	if c := req.GetCredential(); c != nil {
		opts = append(opts, imageservice.WithCredential(remote.Credential{
			Username:     c.GetUsername(),
			Password:     c.GetPassword(),
			RefreshToken: c.GetRefreshToken(),
			AccessToken:  c.GetAccessToken(),
		}))
	}
	return opts, nil
}

// pullQueue holds the progress events a stream has not sent yet. push
// never blocks: a downloading event replaces a pending downloading event
// of the same blob, so the queue holds at most a few events per blob and
// every change of state is kept, in order.
type pullQueue struct {
	mu      sync.Mutex // guards the fields below
	pending []imageservice.Progress
	sum     *imageservice.Summary
	closed  bool
	wake    chan struct{} // buffered 1: something was pushed or the queue closed
}

func newPullQueue() *pullQueue {
	return &pullQueue{wake: make(chan struct{}, 1)}
}

// push is the pull's progress callback. It outlives the RPC: the service
// keeps calling it while a pull that this call left runs on.
func (q *pullQueue) push(p imageservice.Progress) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if p.Summary != nil {
		q.sum = p.Summary
		return
	}
	if p.State == imageservice.StateDownloading {
		for i := len(q.pending) - 1; i >= 0; i-- {
			if q.pending[i].Desc.Digest == p.Desc.Digest {
				if q.pending[i].State == imageservice.StateDownloading {
					q.pending[i] = p
					return
				}
				break
			}
		}
	}
	q.pending = append(q.pending, p)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close ends the queue: send returns once it has sent what is pending.
func (q *pullQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *pullQueue) summary() *imageservice.Summary {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sum
}

// send sends the pending events until the queue is closed and empty, or
// sending fails, or ctx ends.
func (q *pullQueue) send(ctx context.Context, stream api.Images_PullServer) error {
	for {
		q.mu.Lock()
		batch, closed := q.pending, q.closed
		q.pending = nil
		q.mu.Unlock()
		for _, p := range batch {
			if err := stream.Send(&api.PullResponse{Event: &api.PullResponse_Blob{Blob: blobProgressToProto(p)}}); err != nil {
				return err
			}
		}
		if closed && len(batch) == 0 {
			return nil
		}
		if len(batch) > 0 {
			continue // closed may have come in while sending
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var blobStates = map[imageservice.State]api.BlobState{
	imageservice.StateWaiting:     api.BlobState_WAITING,
	imageservice.StateDownloading: api.BlobState_DOWNLOADING,
	imageservice.StateUnpacking:   api.BlobState_UNPACKING,
	imageservice.StateDone:        api.BlobState_DONE,
	imageservice.StateExists:      api.BlobState_EXISTS,
}

func blobProgressToProto(p imageservice.Progress) *api.BlobProgress {
	return &api.BlobProgress{
		Desc:        convert.DescriptorToProto(p.Desc),
		State:       blobStates[p.State],
		Offset:      p.Offset,
		Total:       p.Total,
		ResumedFrom: p.Resumed,
		StartedAt:   convert.Timestamp(p.StartedAt),
		UpdatedAt:   convert.Timestamp(p.UpdatedAt),
	}
}

// pullResultToProto converts the result; sum is nil when the pull was
// joined after its summary went out.
func pullResultToProto(img meta.Image, sum *imageservice.Summary) *api.PullResult {
	r := &api.PullResult{Image: convert.ImageToProto(img)}
	if sum == nil {
		return r
	}
	r.Elapsed = convert.Duration(sum.Elapsed)
	r.Fetched, r.FetchedBytes, r.Existing = int32(sum.Fetched), sum.FetchedBytes, int32(sum.Existing)
	r.Unpacked, r.UnpackedExisting, r.Streamed = int32(sum.Unpacked), int32(sum.UnpackedExisting), int32(sum.Streamed)
	r.FetchTime, r.ApplyTime = convert.Duration(sum.Fetch), convert.Duration(sum.Apply)
	r.SyncTime, r.CommitTime = convert.Duration(sum.Sync), convert.Duration(sum.Commit)
	return r
}
