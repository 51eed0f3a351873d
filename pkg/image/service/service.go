// Package service is the image service of the daemon: it pulls images
// (resolve, fetch, unpack), and gets, lists, inspects and removes them.
//
// A pull runs under a lease and follows ARCHITECTURE.md's PullImage flow:
// concurrent pulls of the same reference, platforms and credentials are
// deduplicated; the reference is resolved; the tree of blobs is fetched by
// image.Dispatch with at most max_concurrent_downloads blobs at once, each
// blob through the ingest "fetch-<digest>", resumed from the offset an
// interrupted pull left there and verified by the content store on
// Commit. Layers are unpacked while the others download. With a
// snapshotter that can rebase (overlayfs) every layer is applied at once
// into its own empty snapshot, usually straight from the network: the
// HTTP body is teed into the content writer and the decompressor, so the
// blob is read from the network once and never re-read from disk. The
// snapshots are then committed in chain order, each over the previous
// ChainID. With the native snapshotter the layers are applied one after
// the other, each over a copy of the one below.
//
// It lives beside pkg/image rather than in it because it builds the
// resolver of image/remote, which imports pkg/image.
//
// This package imports pkg/image and its sub-packages, meta, content,
// snapshot, archive and leaves.
package service

import (
	"context"
	"fmt"
	"net/http"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/prometheus/client_golang/prometheus"

	"golang.org/x/sync/semaphore"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// Service pulls and manages images in the metadata database.
type Service struct {
	db       *meta.DB
	cfg      Config
	cs       content.Store
	sn       snapshot.Snapshotter
	rebase   bool   // sn applies layers independently (snapshot.CanRebase)
	userXatt bool   // overlay whiteouts as user.* xattrs (rootless)
	tmpMount string // where temporary mounts go ("" for os.TempDir())

	ropts    remote.Options
	resolver *remote.Resolver // for pulls without credentials; caches tokens

	unpackSem *semaphore.Weighted // layers applied at once, over all pulls
	syncer    syncer
	flights   flights
	metrics   *metrics
	register  prometheus.Registerer // nil: metrics not registered
}

// Opt configures a Service.
type Opt func(*Service)

// WithHTTPClient makes the registry requests through c (tests count or
// break requests with it).
func WithHTTPClient(c *http.Client) Opt {
	return func(s *Service) { s.ropts.Client = c }
}

// WithPlainHTTP says which registry hosts without a hosts.toml are spoken
// to over plain HTTP; the default is loopback hosts only.
func WithPlainHTTP(fn func(host string) bool) Opt {
	return func(s *Service) { s.ropts.PlainHTTP = fn }
}

// WithUserXattr writes the opaque directories of overlay layers with
// user.overlay.opaque, for overlays mounted with "userxattr". The default
// is to do so when the process runs in a user namespace.
func WithUserXattr(on bool) Opt {
	return func(s *Service) { s.userXatt = on }
}

// WithTempMounts makes the temporary mounts of an unpack in dir, which
// the daemon cleans at start (mount.CleanupTempMounts).
func WithTempMounts(dir string) Opt {
	return func(s *Service) { s.tmpMount = dir }
}

// New returns the image service over db, unpacking into the snapshotter
// cfg.Snapshotter names. Close it before closing db.
func New(db *meta.DB, cfg Config, opts ...Opt) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sn := db.Snapshotter(cfg.Snapshotter)
	if sn == nil {
		return nil, fmt.Errorf("image config: snapshotter %q is not configured: %w", cfg.Snapshotter, errdefs.ErrInvalidArgument)
	}
	inUserNS, err := mount.InUserNS()
	if err != nil {
		return nil, err
	}
	s := &Service{
		db:        db,
		cfg:       cfg,
		cs:        db.ContentStore(),
		sn:        sn,
		rebase:    snapshot.CanRebase(sn),
		userXatt:  inUserNS,
		unpackSem: semaphore.NewWeighted(int64(cfg.MaxUnpackParallel)),
		flights:   flights{m: map[string]*flight{}},
		metrics:   newMetrics(),
	}
	s.ropts.ConfigPath = cfg.ConfigPath
	for _, o := range opts {
		o(s)
	}
	s.resolver = remote.NewResolver(s.ropts)
	if s.register != nil {
		if err := s.metrics.register(s.register); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Snapshotter is the name of the snapshotter images are unpacked into.
func (s *Service) Snapshotter() string { return s.cfg.Snapshotter }

// Get returns the image name.
func (s *Service) Get(ctx context.Context, name string) (meta.Image, error) {
	return s.db.Images().Get(ctx, name)
}

// List returns the images matching any of filters (pkg/filters syntax;
// fields name, target.digest, target.mediatype, labels.<key>).
func (s *Service) List(ctx context.Context, filters ...string) ([]meta.Image, error) {
	return s.db.Images().List(ctx, filters...)
}
