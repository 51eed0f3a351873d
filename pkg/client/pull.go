package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	api "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// BlobState is the state of one blob of a pull, in the order a blob goes
// through them (Waiting may come again between Downloading and Unpacking,
// while a downloaded layer waits for the layers below it).
type BlobState int

// The states of a blob.
const (
	BlobWaiting BlobState = iota
	BlobDownloading
	BlobUnpacking
	BlobDone
	BlobExists
)

func (s BlobState) String() string {
	switch s {
	case BlobWaiting:
		return "waiting"
	case BlobDownloading:
		return "downloading"
	case BlobUnpacking:
		return "unpacking"
	case BlobDone:
		return "done"
	case BlobExists:
		return "exists"
	}
	return "unknown"
}

// PullProgress is the state of one blob of a pull.
type PullProgress struct {
	Desc  ocispec.Descriptor
	State BlobState
	// Offset is the bytes of the blob in the content store, Total its size.
	Offset, Total int64
	// Resumed is the offset an interrupted download resumed from, 0 for a
	// fresh one.
	Resumed int64
	// StartedAt is when the download started, UpdatedAt when the event was
	// made.
	StartedAt, UpdatedAt time.Time
}

// BytesPerSecond is the download rate of the blob so far.
func (p PullProgress) BytesPerSecond() float64 {
	d := p.UpdatedAt.Sub(p.StartedAt).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(p.Offset-p.Resumed) / d
}

// PullSummary says what a pull did. The phase times are sums over blobs,
// which overlap. It is zero (but for Image) when the pull joined one in
// progress too late to see its end.
type PullSummary struct {
	Image   meta.Image
	Elapsed time.Duration
	// Fetched blobs and their bytes as received from the registry.
	Fetched      int
	FetchedBytes int64
	// Existing blobs were not fetched: present already, or layers whose
	// snapshot was (counted in UnpackedExisting too). Fetched plus
	// Existing is every blob of the pull.
	Existing int
	// Layers applied, layers found already unpacked, layers applied while
	// they downloaded.
	Unpacked, UnpackedExisting, Streamed int
	Fetch, Apply, Sync, Commit           time.Duration
}

// PullOpt configures a pull.
type PullOpt func(*api.PullRequest, *pullHandlers)

type pullHandlers struct {
	progress func(PullProgress)
	summary  func(PullSummary)
}

// WithPlatform pulls for platform ("os/arch[/variant]") rather than the
// daemon's; given several times, the first that the image has wins.
func WithPlatform(platform string) PullOpt {
	return func(r *api.PullRequest, _ *pullHandlers) { r.Platforms = append(r.Platforms, platform) }
}

// WithAllPlatforms fetches the manifests of every platform of an index.
func WithAllPlatforms() PullOpt {
	return func(r *api.PullRequest, _ *pullHandlers) { r.AllPlatforms = true }
}

// Credential authenticates a pull to the registry of the reference (and
// not to its mirrors): a username and password, or an identity (refresh)
// token, or a registry (access) token, as a Docker config file gives them.
type Credential struct {
	Username, Password, RefreshToken, AccessToken string
}

// WithCredential authenticates the pull with cred.
func WithCredential(cred Credential) PullOpt {
	return func(r *api.PullRequest, _ *pullHandlers) {
		r.Credential = &api.Credential{Username: cred.Username, Password: cred.Password, RefreshToken: cred.RefreshToken, AccessToken: cred.AccessToken}
	}
}

// WithPullProgress calls fn with every progress event, in order, from the
// goroutine that called Pull.
func WithPullProgress(fn func(PullProgress)) PullOpt {
	return func(_ *api.PullRequest, h *pullHandlers) { h.progress = fn }
}

// WithPullSummary calls fn with the summary of a successful pull before
// Pull returns.
func WithPullSummary(fn func(PullSummary)) PullOpt {
	return func(_ *api.PullRequest, h *pullHandlers) { h.summary = fn }
}

// Pull has the daemon pull ref in the namespace of ctx and returns the
// image. Cancelling ctx cancels the pull (the daemon keeps what it fetched
// for the next pull to resume).
func (c *Client) Pull(ctx context.Context, ref string, opts ...PullOpt) (meta.Image, error) {
	req := &api.PullRequest{Ref: ref}
	var h pullHandlers
	for _, o := range opts {
		o(req, &h)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if a handler panics or we return early
	stream, err := api.NewImagesClient(c.conn).Pull(ctx, req)
	if err != nil {
		return meta.Image{}, err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return meta.Image{}, fmt.Errorf("pull %s: stream ended without a result: %w", ref, errdefs.ErrUnavailable)
		}
		if err != nil {
			return meta.Image{}, err
		}
		if b := resp.GetBlob(); b != nil && h.progress != nil {
			h.progress(pullProgressFromProto(b))
		}
		if r := resp.GetResult(); r != nil {
			sum := pullSummaryFromProto(r)
			if h.summary != nil {
				h.summary(sum)
			}
			return sum.Image, nil
		}
	}
}

func pullProgressFromProto(b *api.BlobProgress) PullProgress {
	return PullProgress{
		Desc:      convert.DescriptorFromProto(b.GetDesc()),
		State:     BlobState(b.GetState()), // the enums share their numbers
		Offset:    b.GetOffset(),
		Total:     b.GetTotal(),
		Resumed:   b.GetResumedFrom(),
		StartedAt: convert.Time(b.GetStartedAt()),
		UpdatedAt: convert.Time(b.GetUpdatedAt()),
	}
}

func pullSummaryFromProto(r *api.PullResult) PullSummary {
	return PullSummary{
		Image:            convert.ImageFromProto(r.GetImage()),
		Elapsed:          convert.DurationFromProto(r.GetElapsed()),
		Fetched:          int(r.GetFetched()),
		FetchedBytes:     r.GetFetchedBytes(),
		Existing:         int(r.GetExisting()),
		Unpacked:         int(r.GetUnpacked()),
		UnpackedExisting: int(r.GetUnpackedExisting()),
		Streamed:         int(r.GetStreamed()),
		Fetch:            convert.DurationFromProto(r.GetFetchTime()),
		Apply:            convert.DurationFromProto(r.GetApplyTime()),
		Sync:             convert.DurationFromProto(r.GetSyncTime()),
		Commit:           convert.DurationFromProto(r.GetCommitTime()),
	}
}
