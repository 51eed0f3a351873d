package shim

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The messages are those runc 1.1.5 and crun 1.8.1 print, as go-runc
// wraps them ("<exit>: <output>") or as they log them.
func TestRuntimeErrorClasses(t *testing.T) {
	for _, c := range []struct {
		text, logged string
		class        error
	}{
		// runc
		{`exit status 1: time="..." level=error msg="container not running"`, "", errdefs.ErrFailedPrecondition},
		{`exit status 1: time="..." level=error msg="container not paused"`, "", errdefs.ErrFailedPrecondition},
		{`exit status 1: time="..." level=error msg="cannot start an already running container"`, "", errdefs.ErrFailedPrecondition},
		{`exit status 1: time="..." level=error msg="cannot delete container c1 that is not stopped: running"`, "", errdefs.ErrFailedPrecondition},
		{`exit status 255: time="..." level=error msg="exec failed: cannot exec in a stopped container"`, "", errdefs.ErrFailedPrecondition},
		{`exit status 1: time="..." level=error msg="container does not exist"`, "", errdefs.ErrNotFound},
		{`exit status 1: time="..." level=error msg="runc create failed: container with given ID already exists"`, "", errdefs.ErrAlreadyExists},
		{`exit status 1: time="..." level=error msg="unknown signal \"FOO\""`, "", errdefs.ErrInvalidArgument},
		{"/usr/bin/runc did not terminate successfully: exit status 1", "runc create failed: args must not be empty", errdefs.ErrInvalidArgument},
		{"/usr/bin/runc did not terminate successfully: exit status 1", "runc create failed: Cwd must be an absolute path", errdefs.ErrInvalidArgument},
		{"/usr/bin/runc did not terminate successfully: exit status 1",
			`runc create failed: unable to start container process: exec: "/nonexistent": stat /nonexistent: no such file or directory`, errdefs.ErrInvalidArgument},
		{"exit status 255", `exec failed: unable to start container process: exec: "/nonexist": stat /nonexist: no such file or directory`, errdefs.ErrInvalidArgument},
		{"/usr/sbin/runc did not terminate successfully: exit status 1",
			"runc create failed: unable to start container process: error during container init: mkdir /w: file exists", errdefs.ErrInvalidArgument},
		{"/usr/sbin/runc did not terminate successfully: exit status 1",
			"runc create failed: unable to start container process: error during container init: mkdir /w: no space left on device", errdefs.ErrResourceExhausted},
		// crun
		{"exit status 1: the container `c1` is not running", "", errdefs.ErrFailedPrecondition},
		{"exit status 1: the container `c1` is not in `created` or `stopped` state", "", errdefs.ErrFailedPrecondition},
		{"exit status 1: kill container: No such process", "", errdefs.ErrFailedPrecondition},
		{"exit status 1: error opening file `/run/crun/c1/status`: No such file or directory", "", errdefs.ErrNotFound},
		{"exit status 1: cannot open directory '/run/crun/c1': No such file or directory", "", errdefs.ErrNotFound},
		{"exit status 1: container `c1` already exists", "", errdefs.ErrAlreadyExists},
		{"/usr/bin/crun did not terminate successfully: exit status 1", "executable file `/nonexistent` not found in $PATH: No such file or directory", errdefs.ErrInvalidArgument},
		{"/usr/bin/crun did not terminate successfully: exit status 1", "open executable: Invalid argument", errdefs.ErrInvalidArgument},
		{"/usr/bin/crun did not terminate successfully: exit status 1", "chdir `/w/sub`: No such file or directory", errdefs.ErrInvalidArgument},
		// both
		{"exit status 1: write /sys/fs/cgroup/x: no space left on device", "", errdefs.ErrResourceExhausted},
		{"exit status 1: something nobody expected", "", errdefs.ErrUnknown},
	} {
		err := runtimeError("start", "c1", errors.New(c.text), c.logged)
		if !errors.Is(err, c.class) {
			t.Errorf("%q + %q: got %v, want class %v", c.text, c.logged, err, c.class)
		}
		if !strings.HasPrefix(err.Error(), `start container "c1": `) || c.logged != "" && !strings.Contains(err.Error(), c.logged) {
			t.Errorf("%q: message %q lacks the subject or the logged text", c.text, err)
		}
	}
	if err := runtimeError("create", "c1", fmt.Errorf("exec: %w", exec.ErrNotFound), ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("missing runtime binary: %v", err)
	}
	if err := runtimeError("create", "c1", context.DeadlineExceeded, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	if runtimeError("start", "c1", nil, "x") != nil {
		t.Error("no error must stay nil")
	}
}

func TestLastErrorLine(t *testing.T) {
	for _, c := range []struct{ log, want string }{
		{`{"level":"error","msg":"first","time":"t"}` + "\n" + `{"level":"warning","msg":"later warning"}` + "\n", "first"},
		{`{"level":"error","msg":"a"}` + "\n" + `{"level":"error","msg":"b"}` + "\n", "b"},
		{"plain text error from crun\n", "plain text error from crun"},
		{"", ""},
	} {
		if got := lastErrorLine(c.log); got != c.want {
			t.Errorf("%q: got %q, want %q", c.log, got, c.want)
		}
	}
}
