package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

// fetchChunk is the read size of a download that is not streamed.
const fetchChunk = 1 << 20

// puller is the state of one pull: the handler that Dispatch runs on
// every descriptor, and the unpack jobs its manifests start.
type puller struct {
	s       *Service
	fetcher *remote.Fetcher
	o       *pullOptions
	rep     *reporter
	stats   stats
	matcher image.Matcher // of the manifests to fetch
	unpackM image.Matcher // of the manifest to unpack

	// eg owns every goroutine of the pull and ctx is its context (not the
	// handler's, which ends with Dispatch); both set by run.
	eg  *errgroup.Group
	ctx context.Context

	root     digest.Digest          // the target the reference resolved to
	mu       sync.Mutex             // guards selected, handled, depth and jobs
	selected map[digest.Digest]bool // manifests and indexes to unpack
	// handled holds the indexes and manifests handled, and whether they
	// were selected then; depth the nesting of indexes (the root's is 0).
	handled map[digest.Digest]bool
	depth   map[digest.Digest]int
	jobs    []*unpackJob
}

func newPuller(s *Service, f *remote.Fetcher, o *pullOptions, rep *reporter) *puller {
	return &puller{s: s, fetcher: f, o: o, rep: rep, matcher: o.matcher(), unpackM: o.unpackMatcher(),
		selected: map[digest.Digest]bool{}, handled: map[digest.Digest]bool{}, depth: map[digest.Digest]int{}}
}

// openIngest opens the writer of desc's ingest under the pull's lease, as
// everything a pull writes or links: a blob the namespace (or another
// namespace) already has is linked into the lease, so that no collection
// can take it before the image record holds it (AlreadyExists then). A
// failed pull's lease keeps the ingest, for keep_failed_pull, so that the
// next pull resumes it.
func (p *puller) openIngest(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	w, err := content.OpenWriter(ctx, p.s.cs, content.WithRef(ingestRef(desc)), content.WithDescriptor(desc))
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("ingest of %s: %w", desc.Digest, err)
	}
	return w, err
}

// run fetches the tree under root and unpacks the selected manifest. On
// failure the snapshots it prepared and did not commit are removed; the
// ingests stay for a later pull to resume.
func (p *puller) run(ctx context.Context, root ocispec.Descriptor) error {
	eg, ectx := errgroup.WithContext(ctx)
	p.eg, p.ctx = eg, ectx
	p.root = root.Digest
	p.selected[root.Digest] = true
	limiter := semaphore.NewWeighted(int64(p.s.cfg.MaxConcurrentDownloads))
	eg.Go(func() error {
		return image.Dispatch(ectx, image.HandlerFunc(p.handle), limiter, root)
	})
	err := eg.Wait()
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		p.mu.Lock()
		jobs := p.jobs
		p.mu.Unlock()
		for _, j := range jobs {
			j.removeActive(cctx)
		}
	}
	return err
}

// handle is the Handler of the pull: fetch the blob, then find the
// children to fetch next.
func (p *puller) handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if (image.IsIndex(desc.MediaType) || image.IsManifest(desc.MediaType)) && p.handledBefore(desc) {
		return nil, nil
	}
	switch mt := desc.MediaType; {
	case image.IsIndex(mt):
		return p.handleIndex(ctx, desc)
	case image.IsManifest(mt):
		return p.handleManifest(ctx, desc)
	case image.IsSchema1(mt):
		return image.Children(ctx, p.s.cs, desc) // NotImplemented
	case image.IsLayer(mt):
		return nil, p.handleLayer(ctx, desc)
	}
	return nil, p.fetchBlob(ctx, desc)
}

// handleIndex fetches an index, labels it with all its manifests and
// returns the manifests of the platforms asked for. It selects the one
// to unpack when the index itself is selected.
func (p *puller) handleIndex(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	p.mu.Lock()
	depth := p.depth[desc.Digest]
	p.mu.Unlock()
	if depth >= image.MaxIndexDepth {
		return nil, fmt.Errorf("index %s: nested more than %d deep: %w", desc.Digest, image.MaxIndexDepth, errdefs.ErrInvalidArgument)
	}
	if err := p.fetchBlob(ctx, desc); err != nil {
		return nil, err
	}
	h := image.SetChildrenLabels(p.s.cs, image.ChildrenHandler(p.s.cs))
	if !p.o.all {
		h = image.LimitManifests(image.FilterPlatforms(h, p.matcher), p.matcher, 1)
	}
	children, err := h(ctx, desc)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range children {
		if image.IsIndex(c.MediaType) {
			p.depth[c.Digest] = max(p.depth[c.Digest], depth+1)
		}
	}
	if p.selected[desc.Digest] {
		if best, ok := bestManifest(children, p.unpackM); ok {
			p.selected[best.Digest] = true
		}
	}
	for _, c := range children {
		p.rep.emit(Progress{Desc: c, State: StateWaiting, Total: c.Size})
	}
	return children, nil
}

// bestManifest is the child m prefers among those with a platform it
// matches; failing that the first child without a platform.
func bestManifest(children []ocispec.Descriptor, m image.Matcher) (ocispec.Descriptor, bool) {
	var best, noPlatform *ocispec.Descriptor
	for i := range children {
		c := &children[i]
		switch {
		case c.Platform == nil:
			if noPlatform == nil {
				noPlatform = c
			}
		case m.Match(*c.Platform) && (best == nil || m.Less(*c.Platform, *best.Platform)):
			best = c
		}
	}
	if best == nil {
		best = noPlatform
	}
	if best == nil {
		return ocispec.Descriptor{}, false
	}
	return *best, true
}

// handleManifest fetches a manifest and its config, labels the manifest
// with its children, and returns the layers to fetch: all of them, or for
// the manifest to unpack those its unpack job needs.
func (p *puller) handleManifest(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if err := p.fetchBlob(ctx, desc); err != nil {
		return nil, err
	}
	children, err := image.SetChildrenLabels(p.s.cs, image.ChildrenHandler(p.s.cs))(ctx, desc)
	if err != nil {
		return nil, err
	}
	config, layers := children[0], children[1:]
	p.mu.Lock()
	selected := p.selected[desc.Digest]
	p.mu.Unlock()
	if err := checkLayers(desc, layers, selected); err != nil {
		return nil, err
	}
	if err := p.fetchBlob(ctx, config); err != nil {
		return nil, err
	}
	if !selected {
		return layers, nil
	}
	job, err := p.newJob(ctx, desc, config, layers)
	if err != nil {
		return nil, err
	}
	return job.todo(), nil
}

// handledBefore records that the index or manifest desc is handled now,
// and reports whether it was handled already: a tree that names one
// several times (a hostile index may list the same index thousands of
// times at every level) is walked once. One handled before it was
// selected for unpacking is handled again once selected.
func (p *puller) handledBefore(desc ocispec.Descriptor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	selected := p.selected[desc.Digest]
	if was, ok := p.handled[desc.Digest]; ok && (was || !selected) {
		return true
	}
	p.handled[desc.Digest] = selected
	return false
}

// checkLayers refuses a manifest that lists an index or a manifest among
// its layers (the walk would go on through it, as deep as the registry
// likes) and, for the manifest to unpack, any layer of a media type that
// cannot be unpacked, which no unpack job would ever claim.
func checkLayers(mf ocispec.Descriptor, layers []ocispec.Descriptor, unpack bool) error {
	for i, l := range layers {
		mt := l.MediaType
		if image.IsIndex(mt) || image.IsManifest(mt) || image.IsSchema1(mt) || (unpack && !image.IsLayer(mt)) {
			return fmt.Errorf("manifest %s: layer %d (%s) has media type %q, not a layer: %w", mf.Digest, i, l.Digest, mt, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// handleLayer fetches a layer and has it applied: streamed straight from
// the network when it is fetched from its start and an unpack slot is
// free, else applied from the content store once committed.
func (p *puller) handleLayer(ctx context.Context, desc ocispec.Descriptor) error {
	job, i := p.claim(desc.Digest)
	if job == nil {
		return p.fetchBlob(ctx, desc)
	}
	if err := p.checkSize(desc); err != nil {
		return err
	}
	w, err := p.openIngest(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		p.stats.existing.Add(1)
		job.blobReady(i)
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	st, err := w.Status()
	if err != nil {
		return err
	}
	if st.Offset == 0 && job.rebase && p.s.unpackSem.TryAcquire(1) {
		defer p.s.unpackSem.Release(1)
		return job.stream(ctx, i, w)
	}
	if err := p.download(ctx, w, desc); err != nil {
		return err
	}
	p.rep.emit(Progress{Desc: desc, State: StateWaiting, Offset: desc.Size, Total: desc.Size})
	job.blobReady(i)
	return nil
}

// claim returns the unpack job that waits for the layer dgst and the
// index of the layer in it; nil when no job does.
func (p *puller) claim(dgst digest.Digest) (*unpackJob, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range p.jobs {
		if i, ok := j.claim(dgst); ok {
			return j, i
		}
	}
	return nil, 0
}

func ingestRef(desc ocispec.Descriptor) string { return "fetch-" + desc.Digest.String() }

// checkSize refuses a blob over the limit of its kind before any byte of
// it is fetched.
func (p *puller) checkSize(desc ocispec.Descriptor) error {
	limit, what := p.s.cfg.MaxLayerSize, "blob"
	switch mt := desc.MediaType; {
	case image.IsIndex(mt):
		limit, what = image.MaxIndexSize, "index"
	case image.IsManifest(mt):
		limit, what = image.MaxManifestSize, "manifest"
	case image.IsConfig(mt):
		limit, what = image.MaxConfigSize, "config"
	case image.IsLayer(mt):
		what = "layer"
	}
	if desc.Size < 0 || desc.Size > limit {
		return fmt.Errorf("%s %s is %d bytes, over the limit of %d: %w", what, desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	return nil
}

// fetchBlob makes sure the blob desc is committed in the content store.
func (p *puller) fetchBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if err := p.checkSize(desc); err != nil {
		return err
	}
	w, err := p.openIngest(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		p.stats.existing.Add(1)
		p.rep.emit(Progress{Desc: desc, State: StateExists, Offset: desc.Size, Total: desc.Size})
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if err := p.download(ctx, w, desc); err != nil {
		return err
	}
	p.rep.emit(Progress{Desc: desc, State: StateDone, Offset: desc.Size, Total: desc.Size})
	return nil
}

// download fetches desc into w from the ingest's offset on and commits it.
func (p *puller) download(ctx context.Context, w content.Writer, desc ocispec.Descriptor) error {
	st, err := w.Status()
	if err != nil {
		return err
	}
	offset := st.Offset
	if offset > desc.Size {
		if err := w.Truncate(0); err != nil {
			return err
		}
		offset = 0
	}
	if offset > 0 {
		klog.FromContext(ctx).V(2).Info("Resuming download", "digest", desc.Digest, "offset", offset, "size", desc.Size)
	}
	start := time.Now()
	body, err := p.openRetrying(ctx, desc, offset)
	if err != nil {
		return err
	}
	defer body.Close()
	bp := newBlobProgress(p.rep, desc, offset)
	bp.state(StateDownloading)
	buf := make([]byte, min(fetchChunk, max(desc.Size-offset, 1)))
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			bp.add(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	p.stats.fetch.Add(since(start))
	p.stats.fetched.Add(1)
	p.stats.fetchedBytes.Add(desc.Size - offset)
	return p.commitBlob(ctx, w, desc)
}

// commitBlob commits the ingest, which checks size and digest. A blob
// that does not match its descriptor is closed and aborted, so the next
// pull starts it again instead of resuming bad bytes (closing twice is
// allowed).
func (p *puller) commitBlob(ctx context.Context, w content.Writer, desc ocispec.Descriptor) error {
	err := w.Commit(ctx, desc.Size, desc.Digest)
	if err == nil || errdefs.IsAlreadyExists(err) {
		return nil
	}
	if errdefs.IsFailedPrecondition(err) {
		_ = w.Close()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if aerr := p.s.cs.Abort(cctx, ingestRef(desc)); aerr != nil && !errdefs.IsNotFound(aerr) {
			klog.FromContext(ctx).Error(aerr, "Abort of a mismatching ingest", "digest", desc.Digest)
		}
	}
	return fmt.Errorf("blob %s (%s) does not match its descriptor: %w", desc.Digest, desc.MediaType, err)
}

// open fetches desc from offset on, watched for stalls: the request, and
// every Read of the body, fail once stall_timeout passes without a byte.
// Time the consumer spends between Reads does not count.
func (p *puller) open(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	d := time.Duration(p.s.cfg.StallTimeout)
	stall := fmt.Errorf("fetch %s: no data from the registry for %v (stall_timeout): %w", desc.Digest, d, errdefs.ErrUnavailable)
	fctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(d, func() { cancel(stall) })
	rc, err := p.fetcher.FetchFrom(fctx, desc, offset)
	timer.Stop()
	if err != nil {
		cancel(nil)
		if errors.Is(context.Cause(fctx), stall) {
			return nil, stall
		}
		return nil, err
	}
	return &stallBody{rc: rc, timer: timer, d: d, ctx: fctx, cancel: cancel, stall: stall}, nil
}

// stallBody is a fetched body whose Reads must each make progress within d.
type stallBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	d      time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	stall  error
}

func (b *stallBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.d)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), b.stall) {
		err = b.stall
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// teeReader hands what it reads from r to w too: the network body goes to
// the decompressor and the content writer in one pass. Reads are
// serialised: an external decompressor's feeding goroutine may still be
// in a Read when a failed apply drains the rest of the body, and either
// way every byte reaches w once, in order.
type teeReader struct {
	mu   sync.Mutex
	r    io.Reader
	w    io.Writer
	bp   *blobProgress
	rerr error // the first error of r but EOF: the fetch failed
}

func (t *teeReader) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.rerr == nil {
		t.rerr = err
	}
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			return 0, werr
		}
		t.bp.add(n)
	}
	return n, err
}

// readErr is the first error of the body but EOF: the fetch failed.
func (t *teeReader) readErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rerr
}

// drain copies what the decompressor left unread into the writer.
func (t *teeReader) drain() error {
	buf := make([]byte, 64<<10)
	for {
		_, err := t.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
