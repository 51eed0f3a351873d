package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// cleanupTimeout bounds the cleanup after a failed pull and each update
// of a pull's lease.
const cleanupTimeout = 30 * time.Second

// PullOpt configures a pull.
type PullOpt func(*pullOptions)

type pullOptions struct {
	platforms []ocispec.Platform // none: the host's
	all       bool
	cred      auth.CredentialFunc
	static    *remote.Credential // bound to the reference's host by Pull
	credID    string
	progress  func(Progress)
}

// WithPlatform pulls (and unpacks) the image for p instead of the host's
// platform. Given several times, the first that the index has wins.
func WithPlatform(p ocispec.Platform) PullOpt {
	return func(o *pullOptions) { o.platforms = append(o.platforms, image.NormalizePlatform(p)) }
}

// WithAllPlatforms fetches the manifests of every platform of an index.
// Only the best one for the host (or for WithPlatform) is unpacked.
func WithAllPlatforms() PullOpt {
	return func(o *pullOptions) { o.all = true }
}

// WithCredential authenticates to the registry of the reference (and to it
// only, not to its mirrors) with cred, as the CRI's AuthConfig gives it.
func WithCredential(cred remote.Credential) PullOpt {
	return func(o *pullOptions) {
		o.cred = nil
		h := sha256.Sum256([]byte(cred.Username + "\x00" + cred.Password + "\x00" + cred.RefreshToken + "\x00" + cred.AccessToken))
		o.credID = "static:" + hex.EncodeToString(h[:])
		o.static = &cred
	}
}

// WithCredentialFunc authenticates with fn (a Docker config file, say).
// id names the identity fn stands for: pulls with the same reference,
// platforms and id are deduplicated; "" never deduplicates with another.
func WithCredentialFunc(id string, fn auth.CredentialFunc) PullOpt {
	return func(o *pullOptions) {
		o.cred, o.static = fn, nil
		if id == "" {
			id = "anonymous-func:" + strconv.FormatUint(uniqueSeq.Add(1), 10)
		}
		o.credID = "func:" + id
	}
}

// WithProgress calls fn with every progress event of the pull, from one
// goroutine at a time. fn must return quickly: it holds the pull up.
func WithProgress(fn func(Progress)) PullOpt {
	return func(o *pullOptions) { o.progress = fn }
}

var uniqueSeq atomic.Uint64

// matcher is the platform matcher of the fetch; unpackMatcher that of the
// manifest to unpack.
func (o *pullOptions) matcher() image.Matcher {
	switch {
	case o.all:
		return image.AllPlatforms()
	case len(o.platforms) > 0:
		return image.Ordered(o.platforms...)
	}
	return image.Only(image.DefaultPlatform())
}

func (o *pullOptions) unpackMatcher() image.Matcher {
	if len(o.platforms) > 0 {
		return image.Ordered(o.platforms...)
	}
	return image.Only(image.DefaultPlatform())
}

// key identifies the pulls that one fetch can serve.
func (o *pullOptions) key(ns, ref string) string {
	ps := "host"
	if len(o.platforms) > 0 {
		ps = ""
		for _, p := range o.platforms {
			ps += image.FormatPlatform(p) + ","
		}
	}
	return fmt.Sprintf("%s\x00%s\x00%s\x00%v\x00%s", ns, ref, ps, o.all, o.credID)
}

// Pull fetches and unpacks the image ref and records it under its
// normalised name. A pull of the same reference, platforms and
// credentials already in progress is joined rather than repeated: the
// caller waits for it and gets its result. Cancelling ctx abandons the
// wait; the pull itself stops when no caller waits for it any more, and
// Close waits for it to have unwound. After Close, Pull returns an
// Unavailable error.
func (s *Service) Pull(ctx context.Context, ref string, opts ...PullOpt) (meta.Image, error) {
	var o pullOptions
	for _, opt := range opts {
		opt(&o)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return meta.Image{}, err
	}
	if o.static != nil {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return meta.Image{}, err
		}
		o.cred = remote.StaticCredentials(named.Domain, *o.static)
	}
	f, fctx, first, err := s.flights.join(ctx, o.key(ns, ref), o.progress)
	if err != nil {
		return meta.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	if first {
		go func() {
			defer s.flights.running.Done()
			defer f.cancel(nil)
			f.img, f.err = s.pull(fctx, ref, &o, &f.rep)
			if f.err != nil && errors.Is(context.Cause(fctx), errClosed) {
				f.err = fmt.Errorf("pull %s: %w", ref, errClosed)
			}
			s.flights.finish(f)
		}()
	} else {
		klog.FromContext(ctx).V(2).Info("Joining a pull in progress", "image", ref)
	}
	select {
	case <-f.done:
		return f.img, f.err
	case <-ctx.Done():
		s.flights.leave(f)
		return meta.Image{}, fmt.Errorf("pull %s: %w", ref, ctx.Err())
	}
}

// pull is one pull, run by its flight: the named steps of the flow.
func (s *Service) pull(ctx context.Context, ref string, o *pullOptions, rep *reporter) (_ meta.Image, retErr error) {
	start := time.Now()
	log := klog.FromContext(ctx).WithValues("image", ref)
	ctx = klog.NewContext(ctx, log)
	log.V(2).Info("Pull started")
	var fetched int64
	defer func() {
		s.metrics.pulled(retErr, fetched, time.Since(start))
		if retErr != nil {
			log.Error(retErr, "Pull failed", "class", errClass(retErr), "elapsed", time.Since(start))
		}
	}()
	ctx, lease, err := s.startLease(ctx, ref)
	if err != nil {
		return meta.Image{}, err
	}
	defer func() { lease.end(retErr) }()

	resolver := s.resolver
	if o.cred != nil {
		ropts := s.ropts
		ropts.Credentials = o.cred
		resolver = remote.NewResolver(ropts)
	}
	name, desc, err := resolver.Resolve(ctx, ref)
	if err != nil {
		return meta.Image{}, err
	}
	fetcher, err := resolver.Fetcher(ctx, name)
	if err != nil {
		return meta.Image{}, err
	}
	p := newPuller(s, fetcher, o, rep)
	if err := p.run(ctx, desc); err != nil {
		return meta.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	// The config of the unpacked platform is the image's ID for the CRI.
	cfgDesc, err := image.Config(ctx, s.cs, desc, o.unpackMatcher())
	if err != nil {
		return meta.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	img, err := s.putImage(ctx, name, desc, cfgDesc.Digest)
	if err != nil {
		return meta.Image{}, err
	}
	sum := p.stats.summary()
	sum.Name, sum.Target, sum.Elapsed = name, desc, time.Since(start)
	fetched = sum.FetchedBytes
	rep.emit(Progress{Desc: desc, State: StateDone, Offset: desc.Size, Total: desc.Size, Summary: sum})
	log.V(2).Info("Pull done", "name", name, "digest", desc.Digest, "elapsed", sum.Elapsed,
		"fetched", sum.Fetched, "bytes", sum.FetchedBytes, "unpacked", sum.Unpacked, "streamed", sum.Streamed)
	return img, nil
}

// errClass names the errdefs class of err, for logs.
func errClass(err error) string {
	for _, c := range []struct {
		is   func(error) bool
		name string
	}{
		{errdefs.IsCanceled, "Canceled"}, {errdefs.IsDeadlineExceeded, "DeadlineExceeded"},
		{errdefs.IsNotFound, "NotFound"}, {errdefs.IsInvalidArgument, "InvalidArgument"},
		{errdefs.IsFailedPrecondition, "FailedPrecondition"}, {errdefs.IsUnavailable, "Unavailable"},
		{errdefs.IsResourceExhausted, "ResourceExhausted"}, {errdefs.IsAlreadyExists, "AlreadyExists"},
		{errdefs.IsNotImplemented, "NotImplemented"}, {errdefs.IsConflict, "Conflict"}, {errdefs.IsInternal, "Internal"},
	} {
		if c.is(err) {
			return c.name
		}
	}
	return "Unknown"
}

// putImage records name → target, creating the image or moving its target
// and config.
func (s *Service) putImage(ctx context.Context, name string, target ocispec.Descriptor, config digest.Digest) (meta.Image, error) {
	target.Platform = nil
	img := meta.Image{Name: name, Target: target, ConfigDigest: config}
	created, err := s.db.Images().Create(ctx, img)
	if err == nil {
		return created, nil
	}
	if !errdefs.IsAlreadyExists(err) {
		return meta.Image{}, err
	}
	return s.db.Images().Update(ctx, img, "target", "config")
}

// Close cancels every pull in progress, those that callers still wait
// for and those that all their callers left, and returns once their
// goroutines have returned: after it, no pull touches the database. Pulls
// started after it fail with an Unavailable error. Should ctx end first,
// Close returns its error and the pulls unwind on their own.
func (s *Service) Close(ctx context.Context) error {
	s.flights.close()
	done := make(chan struct{})
	go func() {
		s.flights.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("image service: close: pulls still unwinding: %w", ctx.Err())
	}
}

// errClosed is the error of a pull after Close, and the cause with which
// Close cancels the pulls in progress.
var errClosed = fmt.Errorf("image service is closed: %w", errdefs.ErrUnavailable)

// flight is one pull in progress and the callers waiting for it.
type flight struct {
	key    string
	done   chan struct{}
	rep    reporter
	cancel context.CancelCauseFunc // cancels the pull; set by join

	// set before done is closed
	img meta.Image
	err error

	waiters int // guarded by flights.mu
}

// flights deduplicates concurrent pulls and owns their goroutines.
type flights struct {
	mu     sync.Mutex // guards m, closed and every flight's waiters
	m      map[string]*flight
	closed bool
	// running counts the goroutines of the flights, including those no
	// longer in m (left by all their callers, still unwinding). Add is
	// called with mu held and closed false, so none is added once close
	// has begun to wait.
	running sync.WaitGroup
}

// join returns the flight of key. When there is none it makes one, with
// the context it must run under (ctx's values, its own cancellation), and
// first true: the caller must run it, and call running.Done when it ends.
// After close it returns errClosed.
func (fs *flights) join(ctx context.Context, key string, progress func(Progress)) (f *flight, fctx context.Context, first bool, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return nil, nil, false, errClosed
	}
	f, ok := fs.m[key]
	if !ok {
		f = &flight{key: key, done: make(chan struct{})}
		fctx, f.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
		fs.m[key] = f
		fs.running.Add(1)
	}
	f.waiters++
	f.rep.subscribe(progress)
	return f, fctx, !ok, nil
}

// close refuses new flights and cancels those in progress. The flights
// that all their callers left are cancelled already.
func (fs *flights) close() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	for _, f := range fs.m {
		f.cancel(errClosed)
	}
}

// leave is called by a caller that stops waiting; the last one cancels the
// pull and lets later callers start a new one.
func (fs *flights) leave(f *flight) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	f.cancel(nil)
}

// finish publishes the result of f to its waiters.
func (fs *flights) finish(f *flight) {
	fs.mu.Lock()
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	fs.mu.Unlock()
	close(f.done)
}
