package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	bolt "go.etcd.io/bbolt"
)

// State is the last known state of the task of a container or a sandbox.
type State uint8

// The states. Values are stable: they are stored.
const (
	// StateUnknown: no task was ever recorded.
	StateUnknown State = iota
	// StateCreated: the task exists and has not started.
	StateCreated
	// StateRunning: the task started and had not exited when last seen.
	StateRunning
	// StatePaused: the task is frozen.
	StatePaused
	// StateExited: the task is gone; ExitCode, FinishedAt and Reason say
	// how. Final until the record is deleted.
	StateExited
)

var stateNames = [...]string{"unknown", "created", "running", "paused", "exited"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// maxStatusMessage bounds Status.Message, in bytes; a longer one is cut.
const maxStatusMessage = 4096

// Status is the last known status of a task: what survives its shim and
// the daemon. bbolt holds it, and nothing else does: the shim holds the
// live process, and the daemon writes here what it learns from it, exits
// above all.
type Status struct {
	State    State
	Pid      uint32
	ExitCode int32
	// StartedAt and FinishedAt are zero until the task started, exited.
	StartedAt  time.Time
	FinishedAt time.Time
	// Reason is a short CamelCase word (OOMKilled, Error, Completed,
	// ShimGone); Message says more, in a sentence.
	Reason  string
	Message string
}

func (st Status) validate(what string) (Status, error) {
	if st.State > StateExited {
		return st, fmt.Errorf("%s: status state %d: %w", what, st.State, errdefs.ErrInvalidArgument)
	}
	if len(st.Reason) > 256 {
		return st, fmt.Errorf("%s: status reason of %d bytes: %w", what, len(st.Reason), errdefs.ErrInvalidArgument)
	}
	if len(st.Message) > maxStatusMessage {
		st.Message = st.Message[:maxStatusMessage]
	}
	st.StartedAt, st.FinishedAt = st.StartedAt.UTC(), st.FinishedAt.UTC()
	return st, nil
}

// statusRecord is Status as stored: one JSON value, so that fields can be
// added without a migration.
type statusRecord struct {
	State      State     `json:"state"`
	Pid        uint32    `json:"pid,omitempty"`
	ExitCode   int32     `json:"exitCode,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
}

func readStatus(bkt *bolt.Bucket) (Status, error) {
	return decodeStatus(bkt.Get(keyStatus))
}

// decodeStatus is the Status stored as v; the zero Status for nil.
func decodeStatus(v []byte) (Status, error) {
	if v == nil {
		return Status{}, nil
	}
	var r statusRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Status{}, internalf("status record %q: %v", v, err)
	}
	return Status(r), nil
}

func writeStatus(bkt *bolt.Bucket, st Status) error {
	if st == (Status{}) {
		return bkt.Delete(keyStatus)
	}
	v, err := json.Marshal(statusRecord(st))
	if err != nil {
		return err
	}
	return bkt.Put(keyStatus, v)
}

// UpdateStatus applies fn to the last known status of the container id,
// or else of the sandbox id (a sandbox's task is its pause container, of
// its own ID), and writes it when fn reports a change. It is how every
// writer of a status (the shims' events, the CRI's own calls) keeps to
// one set of rules: fn decides what may move. NotFound if neither exists.
//
// Most calls change nothing (the shims' events repeat what the CRI wrote
// at once, or the CRI what an event wrote first): a read transaction finds
// those out without the writers' lock and the two syncs of a commit (bolt
// writes its meta page even for an empty one). Such a call takes effect
// at that read, which saw the last committed status, as if it had run
// alone then; one that changes something runs fn again in the write, and
// rolls it back if a concurrent writer made fn's change first.
func (db *DB) UpdateStatus(ctx context.Context, id string, fn func(*Status) bool) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	changes := true
	if err := db.view(ctx, func(btx *bolt.Tx) error {
		st, err := lastStatus(btx, ns, id)
		if err == nil {
			changes = fn(&st)
		}
		return err
	}); err != nil {
		return err
	}
	if !changes {
		return nil
	}
	err = db.Update(ctx, func(tx *Tx) error {
		if c, err := tx.Container(id); err == nil {
			if st := c.Status; fn(&st) {
				return tx.SetContainerStatus(id, st)
			}
			return errUnchanged
		}
		sb, err := tx.Sandbox(id)
		if err != nil {
			return err
		}
		if st := sb.Status; fn(&st) {
			return tx.SetSandboxStatus(id, st)
		}
		return errUnchanged
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// errUnchanged rolls back the write of a status that another writer
// changed first, since the read: a rollback writes and syncs nothing.
var errUnchanged = errors.New("status unchanged")

// lastStatus reads the status of the container id, else of the sandbox
// id; NotFound if neither exists.
func lastStatus(btx *bolt.Tx, ns, id string) (Status, error) {
	for _, kind := range [][]byte{bucketKeyContainers, bucketKeySandboxes} {
		if bkt := nsBucket(btx, ns, kind, []byte(id)); bkt != nil {
			st, _ := readStatus(bkt) // as readContainer: Check reports a corrupt one
			return st, nil
		}
	}
	return Status{}, fmt.Errorf("container or sandbox %q: %w", id, errdefs.ErrNotFound)
}

// The transitions of a status, each reporting whether it changed it. They
// hold whatever order the facts arrive in, and however often (a replayed
// exit, a start seen by both the caller and the event): nothing moves a
// status back, and the first exit stands.

// Created records a task created with its process pid.
func (st *Status) Created(pid uint32) bool {
	if st.State != StateUnknown {
		return false
	}
	st.State, st.Pid = StateCreated, pid
	return true
}

// Started records a task started at at with its process pid.
func (st *Status) Started(pid uint32, at time.Time) bool {
	if st.State == StateExited || (st.State != StateCreated && st.State != StateUnknown && !st.StartedAt.IsZero()) {
		return false
	}
	st.State, st.Pid, st.StartedAt = StateRunning, pid, at.UTC()
	return true
}

// Paused records a running task frozen (paused true) or thawed.
func (st *Status) Paused(paused bool) bool {
	if st.State != StateRunning && st.State != StatePaused {
		return false
	}
	want := StateRunning
	if paused {
		want = StatePaused
	}
	if st.State == want {
		return false
	}
	st.State = want
	return true
}

// Exited records the exit of a task: its code, time and reason ("" is
// Completed for code 0, Error otherwise); message says more.
func (st *Status) Exited(code int32, at time.Time, reason, message string) bool {
	if st.State == StateExited {
		return false
	}
	if reason == "" {
		reason = "Completed"
		if code != 0 {
			reason = "Error"
		}
	}
	st.State, st.ExitCode, st.FinishedAt, st.Reason, st.Message = StateExited, code, at.UTC(), reason, message
	return true
}

// Live reports whether a task was created and has not exited.
func (st Status) Live() bool {
	return st.State == StateCreated || st.State == StateRunning || st.State == StatePaused
}
