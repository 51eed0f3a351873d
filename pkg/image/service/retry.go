package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The backoff between two attempts of one blob: retryBackoff, doubled
// each retry, up to retryBackoffMax.
const (
	retryBackoff    = 250 * time.Millisecond
	retryBackoffMax = 5 * time.Second
)

// openRetrying fetches desc from offset on, like open, and retries a
// transient failure (Unavailable: a refused or reset connection, a body
// cut short, a 5xx, 408 or 429, a stall) with a ranged request from the
// byte it stopped at, within fetch_retries and fetch_retry_time. The
// reader it returns does the same in the middle of the body, so the
// consumer (the content writer, or the decompressor of a streamed layer)
// sees one unbroken stream. Every byte it has handed out is in the ingest
// (or on its way there), so that byte is the ingest's offset.
func (p *puller) openRetrying(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	r := &retryReader{p: p, ctx: ctx, desc: desc, pos: offset}
	for {
		body, err := p.open(ctx, desc, r.pos)
		if err == nil {
			r.body = body
			return r, nil
		}
		if err := r.wait(err); err != nil {
			return nil, err
		}
	}
}

// retryReader is a blob body that reopens itself after a transient error.
type retryReader struct {
	p    *puller
	ctx  context.Context
	desc ocispec.Descriptor
	pos  int64         // bytes of the blob handed out
	body io.ReadCloser // nil after a failure: reopened at pos
	// retries made, and when the first transient error came.
	retries int
	first   time.Time
	err     error // the error it gave up with: every later Read returns it
}

func (r *retryReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		if r.body == nil {
			body, err := r.p.open(r.ctx, r.desc, r.pos)
			if err != nil {
				if r.err = r.wait(err); r.err != nil {
					return 0, r.err
				}
				continue
			}
			r.body = body
		}
		n, err := r.body.Read(b)
		r.pos += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		_ = r.body.Close()
		r.body = nil
		if r.err = r.wait(err); r.err != nil {
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *retryReader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// wait returns nil, after the backoff, when err is to be retried;
// otherwise the error to report, which says how many retries failed.
func (r *retryReader) wait(err error) error {
	if !errdefs.IsUnavailable(err) || errors.Is(err, context.Canceled) || r.ctx.Err() != nil {
		return err
	}
	now := time.Now()
	if r.first.IsZero() {
		r.first = now
	}
	cfg := r.p.s.cfg
	if r.retries >= cfg.FetchRetries || now.Sub(r.first) >= time.Duration(cfg.FetchRetryTime) {
		if r.retries == 0 {
			return err
		}
		return fmt.Errorf("%w (gave up after %d retries in %v)", err, r.retries, now.Sub(r.first).Round(time.Millisecond))
	}
	d := min(retryBackoff<<r.retries, retryBackoffMax)
	r.retries++
	klog.FromContext(r.ctx).V(2).Info("Blob fetch failed, retrying", "digest", r.desc.Digest, "offset", r.pos, "retry", r.retries, "backoff", d, "err", err)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return err
	}
}
