package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// LabelPull is the label of a pull's lease: the reference being pulled.
const LabelPull = "cri-runtime.io/pull"

// pullLease is the lease a pull writes everything under: every blob it
// fetches or links, every ingest, every snapshot. While the pull runs the
// lease expires keep_failed_pull from now and is renewed every third of
// that, so a pull of any length keeps what it fetched, and a pull whose
// daemon was killed keeps it for keep_failed_pull at most. A pull that
// succeeds deletes it (the image record holds the image then); one that
// fails or is stopped sets it to expire keep_failed_pull from then, so
// that the next pull of the image finds the layers it finished.
type pullLease struct {
	lm   *meta.LeaseManager
	ctx  context.Context // the pull's, with the lease
	id   string
	keep time.Duration
	own  bool // created here; false when the caller's ctx had a lease

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLease returns ctx under a new pull lease, renewed until end. When
// ctx already carries a lease, the pull runs under that one, which it
// neither renews nor ends.
func (s *Service) startLease(ctx context.Context, ref string) (context.Context, *pullLease, error) {
	keep := time.Duration(s.cfg.KeepFailedPull)
	if id, ok := leases.FromContext(ctx); ok {
		return ctx, &pullLease{id: id, ctx: ctx}, nil
	}
	lm := s.db.Leases()
	l, err := lm.Create(ctx, meta.WithRandomID(), meta.WithExpiration(keep), meta.WithLeaseLabels(map[string]string{LabelPull: pullLabel(ref)}))
	if err != nil {
		return nil, nil, fmt.Errorf("pull %s: lease: %w", ref, err)
	}
	ctx = leases.WithLease(ctx, l.ID)
	pl := &pullLease{lm: lm, ctx: ctx, id: l.ID, keep: keep, own: true, stop: make(chan struct{})}
	pl.wg.Add(1)
	go pl.renew(s.renewEvery())
	return ctx, pl, nil
}

// renewEvery is how often a running pull renews its lease.
func (s *Service) renewEvery() time.Duration {
	return max(time.Duration(s.cfg.KeepFailedPull)/3, time.Millisecond)
}

// pullLabel bounds the reference to what a label value may hold.
func pullLabel(ref string) string {
	if len(ref) > 1024 {
		return ref[:1024]
	}
	return ref
}

func (pl *pullLease) renew(every time.Duration) {
	defer pl.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	log := klog.FromContext(pl.ctx)
	for {
		select {
		case <-pl.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(pl.ctx), cleanupTimeout)
		_, err := pl.lm.SetExpiry(ctx, pl.id, time.Now().Add(pl.keep))
		cancel()
		if err != nil {
			log.Error(err, "Pull lease not renewed", "lease", pl.id)
		}
	}
}

// end stops the renewal and deletes the lease after a pull that
// succeeded, or that was refused (InvalidArgument, FailedPrecondition: a
// bad image or a blob that does not match; NotFound: no such image or
// platform), as pulling again would not help; after any
// other failure it keeps the lease, and what it holds, for
// keep_failed_pull, unless it holds nothing.
func (pl *pullLease) end(pullErr error) {
	if !pl.own {
		return
	}
	close(pl.stop)
	pl.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(pl.ctx), cleanupTimeout)
	defer cancel()
	log := klog.FromContext(ctx)
	l := meta.Lease{ID: pl.id}
	if pullErr != nil && !refused(pullErr) {
		if rs, err := pl.lm.ListResources(ctx, l); err != nil || len(rs) > 0 {
			at := time.Now().Add(pl.keep)
			if _, err := pl.lm.SetExpiry(ctx, pl.id, at); err != nil && !errdefs.IsNotFound(err) {
				log.Error(err, "Failed pull's lease not bounded; it expires on its own", "lease", pl.id)
			} else {
				log.V(2).Info("Failed pull's layers kept for the next pull", "lease", pl.id, "resources", len(rs), "until", at)
			}
			return
		}
	}
	if err := pl.lm.Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
		log.Error(err, "Pull lease not deleted; it expires on its own", "lease", pl.id)
	}
}

// refused reports whether err says that the image itself is refused.
func refused(err error) bool {
	return errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err)
}
