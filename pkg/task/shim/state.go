package shim

import (
	"fmt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// TransitionError is an operation that the state of a process does not
// allow: starting a stopped container, pausing a created one, exec into a
// stopped one. It is FailedPrecondition, or NotFound for a process that
// was deleted.
type TransitionError struct {
	Process string // `container "c1"` or `exec "e1" in container "c1"`
	State   shimapi.Status
	Op      string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s is %s: cannot %s: %s", e.Process, e.State, e.Op, e.Unwrap())
}

// Unwrap returns the errdefs class of the error.
func (e *TransitionError) Unwrap() error {
	if e.State == shimapi.StatusDeleted {
		return errdefs.ErrNotFound
	}
	return errdefs.ErrFailedPrecondition
}
