package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// kubelet's deadline expires during a slow create: the work goes on, and
// the retry with the same name gets the same ID, without a second create.
func TestRetryGetsTheResultOfTheCreateItTimedOut(t *testing.T) {
	var stages []string
	var smu sync.Mutex
	c := NewCreates[string](time.Minute, func(key, stage string) {
		smu.Lock()
		stages = append(stages, stage)
		smu.Unlock()
	})
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context, stage Stage) (string, error) {
		n := runs.Add(1)
		stage("cni")
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return fmt.Sprintf("id-%d", n), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, "pod", time.Minute, fn)
	if !errdefs.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), `stage "cni"`) {
		t.Fatalf("first call: %v", err)
	}
	if got := c.InProgress()["pod"]; got != "cni" {
		t.Fatalf("in progress: %q", got)
	}
	close(release)
	time.Sleep(20 * time.Millisecond) // it finishes with nobody waiting: parked
	id, err := c.Do(context.Background(), "pod", time.Minute, fn)
	if err != nil || id != "id-1" || runs.Load() != 1 {
		t.Fatalf("retry: %q, %v after %d runs", id, err, runs.Load())
	}
	// Claimed: the next call is a new create.
	id, err = c.Do(context.Background(), "pod", time.Minute, fn)
	if err != nil || id != "id-2" {
		t.Fatalf("after the claim: %q, %v", id, err)
	}
	smu.Lock()
	defer smu.Unlock()
	if len(stages) < 2 || stages[0] != "cni" {
		t.Fatalf("stages reported: %q", stages)
	}
}

// A retry that arrives while the create still runs waits for it.
func TestConcurrentCallsShareOneCreate(t *testing.T) {
	c := NewCreates[int](time.Minute, nil)
	var runs atomic.Int32
	fn := func(ctx context.Context, _ Stage) (int, error) {
		time.Sleep(30 * time.Millisecond)
		return int(runs.Add(1)), nil
	}
	var wg sync.WaitGroup
	results := make([]int, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Do(context.Background(), "k", time.Minute, fn)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	wg.Wait()
	for _, v := range results {
		if v != 1 {
			t.Fatalf("results %v after %d runs", results, runs.Load())
		}
	}
}

// A failed create is not parked: the retry runs the create again.
func TestFailureIsNotParked(t *testing.T) {
	c := NewCreates[string](time.Minute, nil)
	boom := errors.New("boom")
	var runs atomic.Int32
	fn := func(ctx context.Context, _ Stage) (string, error) {
		if runs.Add(1) == 1 {
			time.Sleep(50 * time.Millisecond)
			return "", boom
		}
		return "ok", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, "k", time.Minute, fn); !errdefs.IsDeadlineExceeded(err) {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if v, err := c.Do(context.Background(), "k", time.Minute, fn); err != nil || v != "ok" || runs.Load() != 2 {
		t.Fatalf("retry after a failure: %q, %v, %d runs", v, err, runs.Load())
	}
}

// The create's context does not end with the caller's, but with its own
// timeout; a result nobody claims is forgotten after the park time.
func TestCreateContextAndParkExpiry(t *testing.T) {
	c := NewCreates[string](30*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	_, err := c.Do(ctx, "k", 20*time.Millisecond, func(ctx context.Context, _ Stage) (string, error) {
		<-ctx.Done()
		done <- ctx.Err()
		return "late", nil
	})
	if !errdefs.IsCanceled(err) {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the create's context ended with %v, want its own timeout", err)
	}
	time.Sleep(60 * time.Millisecond)
	if v, err := c.Do(context.Background(), "k", time.Minute, func(context.Context, Stage) (string, error) { return "new", nil }); err != nil || v != "new" {
		t.Fatalf("after the park expired: %q, %v", v, err)
	}
	if n := len(c.InProgress()); n != 0 {
		t.Fatalf("%d creates left", n)
	}
}

func TestPanicIsInternal(t *testing.T) {
	c := NewCreates[int](time.Minute, nil)
	_, err := c.Do(context.Background(), "k", time.Minute, func(context.Context, Stage) (int, error) { panic("bad") })
	if !errdefs.IsInternal(err) {
		t.Fatal(err)
	}
}
