package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Creates makes slow creates idempotent under kubelet's retries. kubelet
// gives RunPodSandbox and CreateContainer a deadline; when it expires it
// calls again with the same configuration, and again, until it gets an
// ID. A create here runs to its end whatever the caller does, and its
// result goes to the caller, or to the caller's retry, never to nobody:
//
//   - a call with the name of a create in progress waits for it and gets
//     its result (never "name is reserved");
//   - a create whose callers all left is parked when it succeeds, and the
//     next call with its name gets its ID at once;
//   - a failed create is not parked: the next call starts a new one.
//
// Keys are chosen by the caller: a pod's namespace, name, UID and
// attempt, say. The zero value is not usable: use NewCreates.
type Creates[T any] struct {
	// park is how long a result nobody collected is kept.
	park time.Duration
	// onStage, if set, is told of every stage change of a create: the
	// metric and the log line of a slow create.
	onStage func(key, stage string)

	mu sync.Mutex // guards m
	m  map[string]*create[T]
}

type create[T any] struct {
	done chan struct{} // closed once val and err are set
	val  T
	err  error

	mu    sync.Mutex // guards stage
	stage string

	// guarded by Creates.mu
	waiters  int
	parkedAt time.Time // zero until parked
}

// NewCreates returns a table that parks unclaimed results for park, and
// tells onStage (which may be nil) of every stage a create enters.
func NewCreates[T any](park time.Duration, onStage func(key, stage string)) *Creates[T] {
	return &Creates[T]{park: park, onStage: onStage, m: map[string]*create[T]{}}
}

// Stage reports what a create has reached; fn calls it as it goes.
type Stage func(stage string)

// Do returns the result of the create of key: that of one in progress or
// parked, or of fn, started now. fn runs on a context with ctx's values
// but not its cancellation, bounded by timeout, so that it finishes when
// the caller gives up. If ctx ends first, Do returns an error of ctx's
// class naming the stage the create is in; the result waits for a retry.
func (c *Creates[T]) Do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context, Stage) (T, error)) (T, error) {
	c.mu.Lock()
	c.expire(time.Now())
	cr, ok := c.m[key]
	if ok && !cr.parkedAt.IsZero() {
		// A success nobody collected: this is the retry it waited for.
		delete(c.m, key)
		c.mu.Unlock()
		return cr.val, cr.err
	}
	if !ok {
		cr = &create[T]{done: make(chan struct{})}
		c.m[key] = cr
		go c.run(ctx, key, cr, timeout, fn)
	}
	cr.waiters++
	c.mu.Unlock()

	select {
	case <-cr.done:
		c.mu.Lock()
		cr.waiters--
		if c.m[key] == cr {
			delete(c.m, key) // claimed
		}
		c.mu.Unlock()
		return cr.val, cr.err
	case <-ctx.Done():
		c.mu.Lock()
		cr.waiters--
		select {
		case <-cr.done: // it finished as this caller left: as in run
			if cr.waiters == 0 && c.m[key] == cr {
				c.settle(key, cr)
			}
		default:
		}
		c.mu.Unlock()
		var zero T
		return zero, fmt.Errorf("create of %q still in progress at stage %q; retry gets its result: %w", key, cr.getStage(), ctx.Err())
	}
}

// run runs fn for key and publishes its result: parked if nobody waits
// and it succeeded, dropped if it failed.
func (c *Creates[T]) run(ctx context.Context, key string, cr *create[T], timeout time.Duration, fn func(context.Context, Stage) (T, error)) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	stage := func(s string) {
		cr.mu.Lock()
		cr.stage = s
		cr.mu.Unlock()
		if c.onStage != nil {
			c.onStage(key, s)
		}
	}
	val, err := func() (val T, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("create of %q: panic: %v: %w", key, r, errdefs.ErrInternal)
			}
		}()
		return fn(rctx, stage)
	}()
	if c.onStage != nil {
		c.onStage(key, "")
	}
	c.mu.Lock()
	cr.val, cr.err = val, err
	if cr.waiters == 0 && c.m[key] == cr {
		c.settle(key, cr)
	}
	close(cr.done)
	c.mu.Unlock()
}

// settle parks the finished create cr, which nobody waits for, if it
// succeeded, and forgets it if it failed; c.mu is held.
func (c *Creates[T]) settle(key string, cr *create[T]) {
	if cr.err == nil {
		cr.parkedAt = time.Now()
	} else {
		delete(c.m, key)
	}
}

// expire forgets the parked results older than park; c.mu is held.
func (c *Creates[T]) expire(now time.Time) {
	for k, cr := range c.m {
		if !cr.parkedAt.IsZero() && now.Sub(cr.parkedAt) > c.park {
			delete(c.m, k)
		}
	}
}

// InProgress returns the stage of every create in progress, by key.
func (c *Creates[T]) InProgress() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, cr := range c.m {
		if cr.parkedAt.IsZero() {
			out[k] = cr.getStage()
		}
	}
	return out
}

func (cr *create[T]) getStage() string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.stage
}
