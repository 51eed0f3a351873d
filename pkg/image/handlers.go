package image

import (
	"context"
	"errors"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

var (
	// ErrSkipDesc, returned by a handler, skips the descriptor: Walk and
	// Dispatch go on with its siblings and do not visit its children.
	ErrSkipDesc = errors.New("skip descriptor")
	// ErrStopHandler, returned by a handler in a Handlers chain, stops the
	// chain for this descriptor; the children found so far are kept.
	ErrStopHandler = errors.New("stop handler")
)

// Handler handles one descriptor of an image tree and returns the children
// to visit next.
type Handler interface {
	Handle(ctx context.Context, desc ocispec.Descriptor) (children []ocispec.Descriptor, err error)
}

// HandlerFunc is a function Handler.
type HandlerFunc func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	return f(ctx, desc)
}

// Handlers chains handlers: each runs in turn on the descriptor, and the
// children are those of the last handler that returned non-nil children.
// ErrStopHandler ends the chain early without error; any other error ends
// it with that error.
func Handlers(hs ...Handler) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		var children []ocispec.Descriptor
		for _, h := range hs {
			ch, err := h.Handle(ctx, desc)
			if errors.Is(err, ErrStopHandler) {
				break
			}
			if err != nil {
				return nil, err
			}
			if ch != nil {
				children = ch
			}
		}
		return children, nil
	}
}

// Walk runs handler on descs and their children, depth first, one at a
// time, in order.
func Walk(ctx context.Context, handler Handler, descs ...ocispec.Descriptor) error {
	for _, desc := range descs {
		if err := ctx.Err(); err != nil {
			return err
		}
		children, err := handler.Handle(ctx, desc)
		if errors.Is(err, ErrSkipDesc) {
			continue
		}
		if err != nil {
			return err
		}
		if len(children) > 0 {
			if err := Walk(ctx, handler, children...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dispatch runs handler on descs and, as each returns, on its children,
// concurrently. At most limiter's weight of handlers run at once (nil: no
// bound); a handler holds its slot only while it runs, not while its
// children are dispatched. The first error cancels the rest and is
// returned once every started handler has returned.
func Dispatch(ctx context.Context, handler Handler, limiter *semaphore.Weighted, descs ...ocispec.Descriptor) error {
	eg, ctx := errgroup.WithContext(ctx)
	var acquireErr error
	for _, desc := range descs {
		if limiter != nil {
			if err := limiter.Acquire(ctx, 1); err != nil {
				acquireErr = err
				break
			}
		}
		eg.Go(func() error {
			children, err := handler.Handle(ctx, desc)
			if limiter != nil {
				limiter.Release(1)
			}
			if errors.Is(err, ErrSkipDesc) {
				return nil
			}
			if err != nil {
				return err
			}
			if len(children) > 0 {
				return Dispatch(ctx, handler, limiter, children...)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	return acquireErr
}

// ChildrenHandler returns the children of each descriptor, read from p.
func ChildrenHandler(p content.Provider) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		return Children(ctx, p, desc)
	}
}

// FilterPlatforms wraps f to keep only the children m matches; children
// without a platform (configs, layers, index entries without one) are
// kept. A nil m keeps all.
func FilterPlatforms(f HandlerFunc, m Matcher) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil {
			return children, err
		}
		return filterPlatforms(children, m), nil
	}
}

// LimitManifests wraps f so that for an index it keeps the n best
// manifests by m's order (n <= 0: all, sorted). An index left with no
// manifest at all is NotFound.
func LimitManifests(f HandlerFunc, m Matcher, n int) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || !IsIndex(desc.MediaType) {
			return children, err
		}
		if len(children) == 0 {
			return nil, fmt.Errorf("index %s: no manifest for %s: %w", desc.Digest, matcherName(m), errdefs.ErrNotFound)
		}
		children = sortPlatforms(children, m)
		if n > 0 && len(children) > n {
			children = children[:n]
		}
		return children, nil
	}
}

// SetChildrenLabels wraps f so that the blob of each descriptor with
// children gets the GC reference labels of those children (see
// LabelGCRefContentPrefix), keeping its other labels. The labels are set
// after f returns, so the blob must be committed by then.
//
// Wrap the unfiltered children handler and filter outside:
//
//	FilterPlatforms(SetChildrenLabels(store, ChildrenHandler(store)), m)
//
// so that the labels of an index name all its manifests by their position
// in the index, whatever platform a pull selects: two pulls of one index
// for different platforms then write the same labels instead of
// overwriting each other's. A label naming a blob never fetched is
// harmless to GC.
func SetChildrenLabels(manager content.Manager, f HandlerFunc) HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := f(ctx, desc)
		if err != nil || len(children) == 0 {
			return children, err
		}
		labels := ChildrenLabels(children)
		info := content.Info{Digest: desc.Digest, Labels: labels}
		fields := make([]string, 0, len(labels))
		for k := range labels {
			fields = append(fields, "labels."+k)
		}
		if _, err := manager.Update(ctx, info, fields...); err != nil {
			return nil, fmt.Errorf("set children labels of %s: %w", desc.Digest, err)
		}
		return children, nil
	}
}

func matcherName(m Matcher) string {
	if m == nil {
		return "any platform"
	}
	return m.String()
}
