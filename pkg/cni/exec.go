package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// pluginExec runs plugin binaries for libcni (it is its invoke.Exec). It
// differs from libcni's own in three ways: each run is bounded by
// plugin_timeout; a run that is cancelled or times out kills the plugin's
// whole process group (a plugin that is a shell script around another one
// would otherwise keep its stdout open, and the call hang, after the kill);
// and its errors say which plugin, which command and why.
type pluginExec struct {
	timeout time.Duration
	version.PluginDecoder
}

var _ invoke.Exec = (*pluginExec)(nil)

// errPluginTimeout is the cause of the context of a run that plugin_timeout
// ended.
var errPluginTimeout = errors.New("plugin_timeout")

// stderrMax bounds the stderr of a plugin kept for its error and the log.
const stderrMax = 4 << 10

// FindInPath finds plugin in the bin dirs; a missing plugin is a
// FailedPrecondition error (the node is not set up), named.
func (e *pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	p, err := invoke.FindInPath(plugin, paths)
	if err != nil {
		return "", fmt.Errorf("plugin %q not found in %s: %w", plugin, strings.Join(paths, ":"), errdefs.ErrFailedPrecondition)
	}
	return p, nil
}

// ExecPlugin runs the plugin at path with stdin on its standard input and
// environ as its environment, and returns its standard output.
func (e *pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	name, command := filepath.Base(path), envValue(environ, "CNI_COMMAND")
	ctx, cancel := context.WithTimeoutCause(ctx, e.timeout, errPluginTimeout)
	defer cancel()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		stdout, stderr, err := run(ctx, path, stdin, environ)
		log := klog.FromContext(ctx).V(4)
		if log.Enabled() {
			log.Info("cni plugin", "plugin", name, "command", command, "container", envValue(environ, "CNI_CONTAINERID"),
				"duration", time.Since(start), "stdout", string(stdout), "stderr", string(stderr), "err", err)
		}
		switch {
		case err == nil:
			return stdout, nil
		case errors.Is(context.Cause(ctx), errPluginTimeout):
			return nil, fmt.Errorf("plugin %s %s killed after plugin_timeout %s%s: %w",
				name, command, e.timeout, stderrNote(stderr), errdefs.ErrUnavailable)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("plugin %s %s killed after %s%s: %w",
				name, command, time.Since(start).Round(time.Millisecond), stderrNote(stderr), ctx.Err())
		case errors.Is(err, syscall.ETXTBSY) && attempt < 5:
			// The binary is being replaced; libcni waits too.
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("plugin %s %s: %w", name, command, ctx.Err())
			}
		}
		return nil, pluginError(name, command, err, stdout, stderr)
	}
}

// run runs the plugin once in a process group of its own, which a
// cancelled ctx kills as a whole.
func run(ctx context.Context, path string, stdin []byte, environ []string) (stdout, stderr []byte, err error) {
	var out bytes.Buffer
	errBuf := &cappedBuffer{max: stderrMax}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = &out
	cmd.Stderr = errBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Should a child outside the group hold the pipes, give up on them.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	return out.Bytes(), errBuf.buf.Bytes(), err
}

// pluginError turns a failed run into a *types.Error, which keeps the CNI
// error code the plugin printed on stdout (classify reads it).
func pluginError(name, command string, err error, stdout, stderr []byte) error {
	var perr types.Error
	if len(stdout) > 0 && json.Unmarshal(stdout, &perr) == nil && (perr.Code != 0 || perr.Msg != "") {
		if perr.Details == "" && len(stderr) > 0 {
			perr.Details = strings.TrimSpace(string(stderr))
		}
		if command != "ADD" && command != "DEL" {
			// libcni names the plugin of a failed ADD or DEL only.
			perr.Msg = fmt.Sprintf("plugin %s %s: %s", name, command, perr.Msg)
		}
		return &perr
	}
	msg := fmt.Sprintf("plugin %s %s: %v", name, command, err)
	if len(stderr) > 0 {
		msg += ": " + strings.TrimSpace(string(stderr))
	}
	if len(stdout) > 0 {
		msg += fmt.Sprintf(" (stdout %q)", truncate(stdout, 512))
	}
	return &types.Error{Code: types.ErrInternal, Msg: msg}
}

func stderrNote(stderr []byte) string {
	if len(stderr) == 0 {
		return ""
	}
	return fmt.Sprintf(" (stderr %q)", truncate(stderr, 512))
}

func truncate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// envValue returns the value of key in environ, the last one winning.
func envValue(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
