package gc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// testCollector stands in for the DB as the Scheduler's input: it records
// when each run starts and returns canned stats. Removed[ResourceLease]
// carries the run's 1-based number, so a waiter can tell which run it got.
type testCollector struct {
	mu         sync.Mutex
	cb         func(dirty bool)
	starts     []time.Time
	stats      Stats
	err        error
	release    chan struct{} // when set, each run waits for one value (or ctx)
	inGC       bool
	registered chan struct{}
}

func newTestCollector() *testCollector {
	return &testCollector{registered: make(chan struct{})}
}

func (c *testCollector) RegisterMutationCallback(fn func(bool)) {
	c.mu.Lock()
	c.cb = fn
	c.mu.Unlock()
	close(c.registered)
}

func (c *testCollector) GarbageCollect(ctx context.Context) (Stats, error) {
	c.mu.Lock()
	c.starts = append(c.starts, time.Now())
	n := len(c.starts)
	stats, err, release := c.stats, c.err, c.release
	stats.Removed = map[ResourceType]int{ResourceLease: n}
	for t, k := range c.stats.Removed {
		stats.Removed[t] = k
	}
	c.inGC = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inGC = false
		c.mu.Unlock()
	}()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return Stats{}, ctx.Err()
		}
	}
	return stats, err
}

func (c *testCollector) mutate(dirty bool) {
	c.mu.Lock()
	cb := c.cb
	c.mu.Unlock()
	cb(dirty)
}

func (c *testCollector) runs() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.starts...)
}

// waitRuns waits until at least n runs have started.
func (c *testCollector) waitRuns(t *testing.T, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := c.runs(); len(r) >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs after 5s, want %d", len(c.runs()), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectNoRunBeyond checks that no more than n runs start during d.
func (c *testCollector) expectNoRunBeyond(t *testing.T, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := len(c.runs()); got != n {
		t.Fatalf("%d runs, want %d", got, n)
	}
}

// startScheduler runs a Scheduler until the test ends.
func startScheduler(t *testing.T, c *testCollector, p Policy, m *Metrics) *Scheduler {
	t.Helper()
	s := NewScheduler(c, p, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-c.registered
	return s
}

func testPolicy() Policy {
	p := DefaultPolicy()
	p.StartupDelay = Duration(time.Millisecond)
	p.PauseThreshold = 1
	return p
}

func pendingWaiters(s *Scheduler) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

func TestStartupRun(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.StartupDelay = Duration(50 * time.Millisecond)
	begin := time.Now()
	startScheduler(t, c, p, nil)
	runs := c.waitRuns(t, 1)
	if d := runs[0].Sub(begin); d < 50*time.Millisecond {
		t.Fatalf("first run %v after start, before the startup delay", d)
	}
	c.expectNoRunBeyond(t, 1, 100*time.Millisecond)
}

func TestDeletionTriggersRun(t *testing.T) {
	c := newTestCollector()
	startScheduler(t, c, testPolicy(), nil)
	c.waitRuns(t, 1)
	c.mutate(false)
	c.expectNoRunBeyond(t, 1, 50*time.Millisecond)
	c.mutate(true)
	c.waitRuns(t, 2)
}

func TestDeletionsBeforeStartupDelayWaitForIt(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.StartupDelay = Duration(time.Hour)
	startScheduler(t, c, p, nil)
	c.mutate(true)
	c.expectNoRunBeyond(t, 0, 100*time.Millisecond)
}

func TestScheduleDelayCoalescesBurst(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.ScheduleDelay = Duration(80 * time.Millisecond)
	startScheduler(t, c, p, nil)
	c.waitRuns(t, 1)
	first := time.Now()
	for range 10 {
		c.mutate(true)
	}
	runs := c.waitRuns(t, 2)
	if d := runs[1].Sub(first); d < 80*time.Millisecond {
		t.Fatalf("run %v after the first deletion, before the schedule delay", d)
	}
	c.expectNoRunBeyond(t, 2, 150*time.Millisecond)
}

func TestDeletionThreshold(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.DeletionThreshold = 3
	startScheduler(t, c, p, nil)
	c.waitRuns(t, 1)
	c.mutate(true)
	c.mutate(true)
	c.expectNoRunBeyond(t, 1, 100*time.Millisecond)
	c.mutate(true)
	c.waitRuns(t, 2)
}

func TestMutationsBelowThresholdDoNotRun(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.MutationThreshold = 10
	startScheduler(t, c, p, nil)
	c.waitRuns(t, 1)
	for range 9 {
		c.mutate(false)
	}
	c.expectNoRunBeyond(t, 1, 100*time.Millisecond)
	c.mutate(false)
	c.waitRuns(t, 2)
}

func TestPauseBudgetSpacesRuns(t *testing.T) {
	c := newTestCollector()
	c.stats.MetaD = 20 * time.Millisecond
	p := testPolicy()
	p.PauseThreshold = 0.5
	startScheduler(t, c, p, nil)
	// Keep a deletion pending at all times: only the budget holds runs back.
	end := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(end) {
		c.mutate(true)
		time.Sleep(2 * time.Millisecond)
	}
	runs := c.runs()
	if len(runs) < 4 {
		t.Fatalf("%d runs in 600ms with a deletion always pending", len(runs))
	}
	for i := 1; i < len(runs); i++ {
		if gap := runs[i].Sub(runs[i-1]); gap < 40*time.Millisecond {
			t.Errorf("runs %d and %d %v apart, want >= 40ms", i-1, i, gap)
		}
	}
}

func TestScheduleAndWaitGetsRunStartedAfterCall(t *testing.T) {
	c := newTestCollector()
	c.release = make(chan struct{})
	p := testPolicy()
	// Long enough that only ScheduleAndWait can cause a run.
	p.StartupDelay = Duration(time.Hour)
	s := startScheduler(t, c, p, nil)
	ctx := context.Background()

	type res struct {
		stats Stats
		err   error
	}
	first := make(chan res, 1)
	go func() {
		st, err := s.ScheduleAndWait(ctx)
		first <- res{st, err}
	}()
	c.waitRuns(t, 1) // run 1 is in progress, blocked on release

	// Two callers arrive while run 1 is in progress: they must not get its
	// result, and they share run 2.
	later := make(chan res, 2)
	for range 2 {
		go func() {
			st, err := s.ScheduleAndWait(ctx)
			later <- res{st, err}
		}()
	}
	for pendingWaiters(s) < 2 {
		time.Sleep(time.Millisecond)
	}
	c.release <- struct{}{}
	if r := <-first; r.err != nil || r.stats.Removed[ResourceLease] != 1 {
		t.Fatalf("first caller got run %d (%v), want run 1", r.stats.Removed[ResourceLease], r.err)
	}
	c.waitRuns(t, 2)
	c.release <- struct{}{}
	for range 2 {
		if r := <-later; r.err != nil || r.stats.Removed[ResourceLease] != 2 {
			t.Fatalf("later caller got run %d (%v), want run 2", r.stats.Removed[ResourceLease], r.err)
		}
	}
	if n := len(c.runs()); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
}

func TestScheduleAndWaitContextEnds(t *testing.T) {
	c := newTestCollector()
	c.stats.MetaD = time.Hour // the budget forbids a second run
	p := testPolicy()
	s := startScheduler(t, c, p, nil)
	c.waitRuns(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.ScheduleAndWait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if n := pendingWaiters(s); n != 0 {
		t.Fatalf("%d waiters left behind", n)
	}
}

func TestTrigger(t *testing.T) {
	c := newTestCollector()
	p := testPolicy()
	p.StartupDelay = Duration(time.Hour)
	s := startScheduler(t, c, p, nil)
	s.Trigger()
	c.waitRuns(t, 1)
	c.expectNoRunBeyond(t, 1, 50*time.Millisecond)
}

func TestRunErrorReachesWaitersAndIsRetried(t *testing.T) {
	c := newTestCollector()
	c.err = fmt.Errorf("bucket %q: %w", "v1", errdefs.ErrInternal)
	p := testPolicy()
	p.StartupDelay = Duration(time.Hour)
	reg := prometheus.NewRegistry()
	s := startScheduler(t, c, p, NewMetrics(reg))
	_, err := s.ScheduleAndWait(context.Background())
	if !errdefs.IsInternal(err) {
		t.Fatalf("got %v, want the collector's Internal error", err)
	}
	if got := counterValue(t, reg, "cri_runtime_gc_failures_total", nil); got != 1 {
		t.Fatalf("failures_total %v, want 1", got)
	}
	// Nothing else asks for a run: the retry comes from the failure alone,
	// after the backoff.
	runs := c.waitRuns(t, 2)
	if gap := runs[1].Sub(runs[0]); gap < minRetryDelay {
		t.Fatalf("retried after %v, want >= %v", gap, minRetryDelay)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newTestCollector()
	c.release = make(chan struct{}) // never released: only ctx ends the run
	p := testPolicy()
	p.StartupDelay = Duration(time.Hour)
	s := NewScheduler(c, p, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	waited := make(chan error, 1)
	go func() {
		_, err := s.ScheduleAndWait(context.Background())
		waited <- err
	}()
	c.waitRuns(t, 1)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	c.mu.Lock()
	inGC := c.inGC
	c.mu.Unlock()
	if inGC {
		t.Fatal("Run returned while a collection was still in progress")
	}
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter of the cancelled run got %v", err)
	}
	if _, err := s.ScheduleAndWait(context.Background()); !errdefs.IsUnavailable(err) {
		t.Fatalf("after stop: got %v, want Unavailable", err)
	}
	c.mutate(true) // the callback outlives Run and must not block
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWaiterPendingAtStopGetsUnavailable(t *testing.T) {
	c := newTestCollector()
	s := NewScheduler(c, testPolicy(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := s.ScheduleAndWait(context.Background())
		waited <- err
	}()
	for pendingWaiters(s) < 1 {
		time.Sleep(time.Millisecond)
	}
	s.Run(ctx) // ctx already done: stops at once
	if err := <-waited; !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if n := len(c.runs()); n != 0 {
		t.Fatalf("%d runs after cancel", n)
	}
}

func TestNewSchedulerRejectsInvalidPolicy(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic for pause_threshold 0")
		}
	}()
	p := DefaultPolicy()
	p.PauseThreshold = 0
	NewScheduler(newTestCollector(), p, nil)
}

func TestMetrics(t *testing.T) {
	c := newTestCollector()
	c.stats = Stats{
		MetaD:     5 * time.Millisecond,
		ContentD:  10 * time.Millisecond,
		SnapshotD: 15 * time.Millisecond,
		Removed:   map[ResourceType]int{ResourceContent: 3, ResourceSnapshot: 2},
	}
	p := testPolicy()
	p.StartupDelay = Duration(time.Hour)
	reg := prometheus.NewRegistry()
	s := startScheduler(t, c, p, NewMetrics(reg))
	if _, err := s.ScheduleAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, reg, "cri_runtime_gc_runs_total", nil); got != 1 {
		t.Errorf("runs_total %v, want 1", got)
	}
	if got := counterValue(t, reg, "cri_runtime_gc_removed_total", map[string]string{"type": "content"}); got != 3 {
		t.Errorf("removed_total{type=content} %v, want 3", got)
	}
	if got := counterValue(t, reg, "cri_runtime_gc_removed_total", map[string]string{"type": "snapshot"}); got != 2 {
		t.Errorf("removed_total{type=snapshot} %v, want 2", got)
	}
	pause := histogram(t, reg, "cri_runtime_gc_pause_seconds")
	if pause.GetSampleCount() != 1 || pause.GetSampleSum() != 0.005 {
		t.Errorf("pause histogram count %d sum %v, want 1 and 0.005", pause.GetSampleCount(), pause.GetSampleSum())
	}
	// 1 ms and 20 ms must fall in different buckets, with some in between.
	var inRange int
	for _, b := range pause.GetBucket() {
		if ub := b.GetUpperBound(); ub >= 0.001 && ub <= 0.02 {
			inRange++
		}
	}
	if inRange < 5 {
		t.Errorf("%d pause buckets in [1ms, 20ms], want >= 5", inRange)
	}
	total := histogram(t, reg, "cri_runtime_gc_duration_seconds")
	if total.GetSampleCount() != 1 || total.GetSampleSum() != 0.03 {
		t.Errorf("duration histogram count %d sum %v, want 1 and 0.03", total.GetSampleCount(), total.GetSampleSum())
	}
}

func TestNewMetricsNilRegistry(t *testing.T) {
	m := NewMetrics(nil)
	m.observe(Stats{MetaD: time.Millisecond, Removed: map[ResourceType]int{ResourceImage: 1}}, nil)
	m.observe(Stats{}, errdefs.ErrInternal)
}

// metric finds the metric of family name whose labels include labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == k && lp.GetValue() == v
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	t.Fatalf("metric %s%v not gathered", name, labels)
	return nil
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metric(t, reg, name, labels).GetCounter().GetValue()
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	return metric(t, reg, name, nil).GetHistogram()
}
