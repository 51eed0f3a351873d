package shim

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// runtimeMessages classifies what the OCI runtimes print when they fail.
// The first row with a fragment found in the (lower-cased) text wins, so
// the more specific rows come first. The fragments are those of runc 1.1
// and crun 1.8; runtime_errors_test.go holds their real messages.
var runtimeMessages = []struct {
	fragments []string
	class     error
}{
	// The process to run cannot be found or started: the caller's spec.
	{[]string{"executable file", "unable to start container process: exec:", "not found in $path"}, errdefs.ErrInvalidArgument},
	{[]string{"must not be empty", "must be an absolute path", "invalid argument", "unknown signal", "invalid signal",
		"json: cannot unmarshal", "invalid character"}, errdefs.ErrInvalidArgument},
	{[]string{"already exists"}, errdefs.ErrAlreadyExists},
	{[]string{"does not exist", "/status`: no such file or directory", "cannot open directory"}, errdefs.ErrNotFound},
	{[]string{"not running", "cannot exec in a stopped container", "not paused", "is paused", "not stopped",
		"not in `created` or `stopped` state", "already running", "has stopped", "no such process"}, errdefs.ErrFailedPrecondition},
	{[]string{"no space left on device", "disk quota exceeded"}, errdefs.ErrResourceExhausted},
	// The working directory cannot be made or entered in the rootfs (a
	// path of the image's through a file or a dangling symlink): after
	// the row above, so that a full disk stays ResourceExhausted.
	{[]string{"error during container init: mkdir ", "chdir `"}, errdefs.ErrInvalidArgument},
}

// runtimeError is the one place that reads the OCI runtime's error output:
// it classifies err, from go-runc (whose text carries what the runtime
// printed), together with logged, the last error the runtime wrote to its
// log file, into an errdefs class. The text is kept for the caller.
func runtimeError(op, id string, err error, logged string) error {
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(err.Error())
	if logged != "" && !strings.Contains(text, logged) {
		text += ": " + logged
	}
	subject := fmt.Sprintf("%s container %q", op, id)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", subject, err)
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("%s: runtime binary: %v: %w", subject, err, errdefs.ErrInvalidArgument)
	}
	lower := strings.ToLower(text)
	for _, m := range runtimeMessages {
		for _, f := range m.fragments {
			if strings.Contains(lower, f) {
				return fmt.Errorf("%s: %s: %w", subject, text, m.class)
			}
		}
	}
	return fmt.Errorf("%s: %s: %w", subject, text, errdefs.ErrUnknown)
}

// runtimeCallBound bounds a runtime call that starts a process.
const runtimeCallBound = 2 * time.Minute

// runtimeContext is the context of a runtime call that starts a process
// (create, start, exec): ctx's values, not its cancellation. A runtime killed
// half-way because its caller gave up (an ExecSync timeout on a loaded
// machine) can leave the process running with nothing tracking it; run
// to its end, the process is known, and the caller's kill reaches it.
func runtimeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), runtimeCallBound)
}
