package gc

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The backoff after a failed run: a collection that keeps failing (a full
// disk, a damaged database) is retried, but not in a hot loop.
const (
	minRetryDelay = time.Second
	maxRetryDelay = 5 * time.Minute
)

// Scheduler runs a Collector when its Policy says so: after deletions,
// after many mutations, at start-up, and on request, never taking more than
// the policy's share of time away from writers.
//
// Lifecycle: NewScheduler, then one call to Run in a goroutine owned by
// the caller, who stops it by cancelling Run's ctx. ScheduleAndWait and
// Trigger may be called from any goroutine, before or while Run runs.
type Scheduler struct {
	c      Collector
	policy Policy
	m      *Metrics

	// wake tells Run that the state under mu changed; capacity 1 so that
	// poking never blocks a writer's commit.
	wake chan struct{}

	mu sync.Mutex
	// Guarded by mu. Counters are of mutations since the last run started.
	mutations  int
	deletions  int
	deletionAt time.Time // when deletions reached the threshold; zero if not
	forced     bool      // Trigger was called
	expiry     time.Time // the earliest expiry known to come; zero if none
	waiters    []chan result
	stopped    bool // Run has returned; no more runs
}

// result is what a run gives its waiters.
type result struct {
	stats Stats
	err   error
}

// NewScheduler returns a Scheduler of c under p, reporting to m (nil m:
// unregistered metrics). p must pass Validate, which config loading does;
// an invalid p is a programming error and panics.
func NewScheduler(c Collector, p Policy, m *Metrics) *Scheduler {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Scheduler{c: c, policy: p, m: m, wake: make(chan struct{}, 1)}
}

// Trigger asks for a run as soon as the pause budget allows, without
// waiting for it. It never blocks.
func (s *Scheduler) Trigger() {
	s.mu.Lock()
	s.forced = true
	s.mu.Unlock()
	s.poke()
}

// ExpiresAt tells the Scheduler that a lease (or anything the Collector
// keeps until a time) expires at t: a collection runs then, under the
// same startup delay and pause budget as the others, so that an idle node
// gets its space back. It never blocks.
func (s *Scheduler) ExpiresAt(t time.Time) {
	s.mu.Lock()
	earlier := s.expiry.IsZero() || t.Before(s.expiry)
	if earlier {
		s.expiry = t
	}
	s.mu.Unlock()
	if earlier {
		s.poke()
	}
}

// ScheduleAndWait asks for a run as soon as the pause budget allows,
// ignoring ScheduleDelay and StartupDelay, and returns its stats or error.
// The run starts after the call, so it sees every write committed before
// the call; concurrent callers share one run. If ctx ends first, its error
// is returned; if Run has stopped, or stops first, the error is Unavailable.
func (s *Scheduler) ScheduleAndWait(ctx context.Context) (Stats, error) {
	ch := make(chan result, 1)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return Stats{}, fmt.Errorf("gc scheduler: stopped: %w", errdefs.ErrUnavailable)
	}
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	s.poke()

	select {
	case r := <-ch:
		return r.stats, r.err
	case <-ctx.Done():
		s.mu.Lock()
		s.waiters = slices.DeleteFunc(s.waiters, func(c chan result) bool { return c == ch })
		s.mu.Unlock()
		return Stats{}, fmt.Errorf("gc scheduler: wait for collection: %w", ctx.Err())
	}
}

// mutated is the Collector's mutation callback. It runs inside the commit
// path of every write, so it only counts and never blocks.
func (s *Scheduler) mutated(dirty bool) {
	s.mu.Lock()
	s.mutations++
	wake := s.policy.MutationThreshold > 0 && s.mutations == s.policy.MutationThreshold
	if dirty {
		s.deletions++
		if s.deletionAt.IsZero() && s.deletions >= max(1, s.policy.DeletionThreshold) {
			s.deletionAt = time.Now()
			wake = true
		}
	}
	s.mu.Unlock()
	if wake {
		s.poke()
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// clock is Run's own state: the times that gate the next run.
type clock struct {
	startupAt   time.Time // automatic runs wait for it, until a first run
	startupDone bool      // a run has happened since start
	budgetAt    time.Time // no run before it: the pause budget, or retry backoff
	failures    int       // consecutive failed runs
}

// Run registers the mutation callback on the Collector and runs
// collections until ctx is done. It returns only once no collection is in
// progress; waiters still pending then get an Unavailable error. Call it
// once.
func (s *Scheduler) Run(ctx context.Context) {
	s.c.RegisterMutationCallback(s.mutated)
	clk := clock{startupAt: time.Now().Add(time.Duration(s.policy.StartupDelay))}
	// Stopped until a run is due; since Go 1.23 Stop and Reset leave no
	// stale tick behind, so the timer is never drained.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			s.stop()
			return
		}
		now := time.Now()
		due, ok := s.nextRun(now, &clk)
		if ok && !now.Before(due) {
			s.runOnce(ctx, &clk)
			continue
		}
		var fire <-chan time.Time
		if ok {
			timer.Reset(due.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fire:
		}
	}
}

// nextRun returns when the next run is due, and false when nothing asks
// for one.
func (s *Scheduler) nextRun(now time.Time, clk *clock) (time.Time, bool) {
	var due time.Time
	ok := false
	consider := func(t time.Time) {
		if !ok || t.Before(due) {
			due, ok = t, true
		}
	}
	s.mu.Lock()
	if len(s.waiters) > 0 || s.forced {
		consider(now)
	}
	// Automatic runs wait for the startup delay only until a first run.
	var gate time.Time
	if !clk.startupDone {
		gate = clk.startupAt
		consider(gate)
	}
	if s.policy.MutationThreshold > 0 && s.mutations >= s.policy.MutationThreshold {
		consider(laterOf(now, gate))
	}
	if !s.deletionAt.IsZero() {
		consider(laterOf(s.deletionAt.Add(time.Duration(s.policy.ScheduleDelay)), gate))
	}
	if !s.expiry.IsZero() {
		consider(laterOf(s.expiry, gate))
	}
	s.mu.Unlock()
	return laterOf(due, clk.budgetAt), ok
}

// runOnce runs one collection and hands its result to the waiters that
// were pending when it started; later waiters wait for the next run.
func (s *Scheduler) runOnce(ctx context.Context, clk *clock) {
	s.mu.Lock()
	waiters := s.waiters
	s.waiters = nil
	s.mutations, s.deletions, s.deletionAt, s.forced = 0, 0, time.Time{}, false
	s.expiry = time.Time{}
	s.mu.Unlock()

	log := klog.FromContext(ctx)
	stats, err := s.c.GarbageCollect(ctx)
	s.m.observe(stats, err)
	clk.startupDone = true
	if !stats.NextExpiry.IsZero() {
		s.ExpiresAt(stats.NextExpiry)
	}
	// Counting from the end, not the start, keeps the pause share under
	// the threshold whatever part of the run the pause fell in.
	clk.budgetAt = time.Now().Add(s.policy.budget(stats.MetaD))
	if err != nil {
		err = fmt.Errorf("garbage collection: %w", err)
		if ctx.Err() == nil { // an interrupted run at shutdown is no failure to report
			log.Error(err, "Garbage collection failed", "waiters", len(waiters))
		}
		retry := min(minRetryDelay<<min(clk.failures, 16), maxRetryDelay)
		clk.failures++
		clk.budgetAt = laterOf(clk.budgetAt, time.Now().Add(retry))
		// What this run should have removed is still there: keep a
		// deletion pending so that it is retried after the backoff.
		s.mu.Lock()
		if s.deletionAt.IsZero() {
			s.deletionAt = time.Now()
		}
		s.mu.Unlock()
	} else {
		clk.failures = 0
		log.V(2).Info("Garbage collected", "pause", stats.MetaD, "elapsed", stats.Elapsed(),
			"removed", stats.Removed, "waiters", len(waiters))
	}
	for _, w := range waiters {
		w <- result{stats: stats, err: err}
	}
}

// stop marks the Scheduler stopped and fails the pending waiters.
func (s *Scheduler) stop() {
	s.mu.Lock()
	s.stopped = true
	waiters := s.waiters
	s.waiters = nil
	s.mu.Unlock()
	for _, w := range waiters {
		w <- result{err: fmt.Errorf("gc scheduler: stopped: %w", errdefs.ErrUnavailable)}
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
