package gc

import (
	"fmt"
	"math"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/duration"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Policy decides when the Scheduler runs a collection. It is the [gc]
// section of the daemon's config file; the zero value is not useful, start
// from DefaultPolicy.
type Policy struct {
	// PauseThreshold is the largest fraction of wall time a collection may
	// block writers. After a run that blocked writers for d (the pause),
	// the next run, of any kind, does not start before d/PauseThreshold
	// has passed since that run ended. Unitless, in (0, 1]; default 0.02
	// (20 ms in every second).
	PauseThreshold float64 `toml:"pause_threshold"`

	// DeletionThreshold is the number of deleting (dirty) mutations that
	// schedules a run, ScheduleDelay after the deletion that reached it.
	// Count of transactions, >= 0; default 0, meaning any deletion
	// schedules a run.
	DeletionThreshold int `toml:"deletion_threshold"`

	// MutationThreshold is the number of mutations of any kind, deletions
	// included, that schedules a run as soon as the pause budget allows.
	// Count of transactions, >= 0; 0 disables this trigger; default 100.
	MutationThreshold int `toml:"mutation_threshold"`

	// ScheduleDelay is how long a run scheduled by DeletionThreshold waits,
	// so that a burst of deletions (a pod and its containers, say) is
	// collected once. Duration string such as "10ms", >= 0; default 0 (run
	// as soon as the pause budget allows).
	ScheduleDelay Duration `toml:"schedule_delay"`

	// StartupDelay is how long after the daemon starts the first run
	// happens; that run collects what a previous life of the daemon left
	// behind. Runs triggered by writes before it wait for it; synchronous
	// deletes do not, and once any run has happened the delay is over.
	// Duration string, >= 0; default "100ms".
	StartupDelay Duration `toml:"startup_delay"`
}

// DefaultPolicy returns the policy documented on each field of Policy.
func DefaultPolicy() Policy {
	return Policy{
		PauseThreshold:    0.02,
		DeletionThreshold: 0,
		MutationThreshold: 100,
		ScheduleDelay:     0,
		StartupDelay:      Duration(100 * time.Millisecond),
	}
}

// Validate returns an InvalidArgument error naming the first field, by its
// TOML key, whose value is out of range.
func (p Policy) Validate() error {
	if math.IsNaN(p.PauseThreshold) || p.PauseThreshold <= 0 || p.PauseThreshold > 1 {
		return fmt.Errorf("gc policy pause_threshold %v: must be in (0, 1]: %w", p.PauseThreshold, errdefs.ErrInvalidArgument)
	}
	if p.DeletionThreshold < 0 {
		return fmt.Errorf("gc policy deletion_threshold %d: must not be negative: %w", p.DeletionThreshold, errdefs.ErrInvalidArgument)
	}
	if p.MutationThreshold < 0 {
		return fmt.Errorf("gc policy mutation_threshold %d: must not be negative: %w", p.MutationThreshold, errdefs.ErrInvalidArgument)
	}
	if p.ScheduleDelay < 0 {
		return fmt.Errorf("gc policy schedule_delay %v: must not be negative: %w", p.ScheduleDelay, errdefs.ErrInvalidArgument)
	}
	if p.StartupDelay < 0 {
		return fmt.Errorf("gc policy startup_delay %v: must not be negative: %w", p.StartupDelay, errdefs.ErrInvalidArgument)
	}
	return nil
}

// budget returns how long after the start of a run that blocked writers for
// pause the next run may start.
func (p Policy) budget(pause time.Duration) time.Duration {
	if pause <= 0 {
		return 0
	}
	return time.Duration(float64(pause) / p.PauseThreshold)
}

// Duration is a time.Duration written in config files as a string such as
// "100ms" or "1m30s" rather than as a count of nanoseconds.
type Duration = duration.Duration
