package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
)

// exitRuntimeError is the exit code of `run` and `tasks exec` when the
// error is not the process's (as docker run's 125).
const exitRuntimeError = 125

// exitStatus makes the CLI exit with code, printing err first if not nil:
// the exit code of a container's process, or exitRuntimeError.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitStatus) Unwrap() error { return e.err }

// runtimeErr is err as exitRuntimeError, nil for nil.
func runtimeErr(err error) error {
	if err == nil {
		return nil
	}
	return &exitStatus{code: exitRuntimeError, err: err}
}

// runFlags are the flags of `run`.
type runFlags struct {
	rm, tty, detach, netHost bool
	seccomp                  bool
	env, mounts, labels      []string
	runtime, memory, group   string
	snapshotter              string
}

func newRunCommand(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [--rm] [-t] [-d] [--env K=V]... [--mount type=bind,src=S,dst=D[,options=ro]]... [--net-host] [--runtime runc|crun] [--memory BYTES] IMAGE ID [CMD...]",
		Short: "Run a container from an image, pulling it if missing",
		Long: "Run a container from an image: pull the image when it is missing, record the container (its\n" +
			"rootfs a snapshot of the image), create and start its task in a shim of its own (or of\n" +
			"--group), and, unless -d, relay its streams and wait: the exit code is the container's, 125\n" +
			"when the container could not be run. CMD replaces the image's Cmd (its Entrypoint stays).\n" +
			"The container has network, IPC, UTS and PID namespaces of its own (loopback only) unless\n" +
			"--net-host. Its output also goes to a log file (label cri-runtime.io/log-path). Without\n" +
			"--rm the stopped container stays: see containers rm.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runtimeErrOr(runRun(cmd, g, f, args[0], args[1], args[2:]))
		},
	}
	// Flags after IMAGE belong to CMD.
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.BoolVar(&f.rm, "rm", false, "remove the container and its snapshot once it exits")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the process a terminal (raw mode on this one, resized with it)")
	fl.BoolVarP(&f.detach, "detach", "d", false, "start it and return, its output only in its log file")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "environment variable K=V (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "bind mount type=bind,src=HOST,dst=PATH[,options=ro[:rslave]] (repeatable)")
	fl.BoolVar(&f.netHost, "net-host", false, "run in the host's network namespace")
	fl.StringVar(&f.runtime, "runtime", "runc", "OCI runtime `BINARY`: runc, crun, or a path")
	fl.StringVar(&f.memory, "memory", "", "memory limit in `BYTES` (suffix k, m, g for KiB, MiB, GiB)")
	fl.StringVar(&f.group, "group", "", "`GROUP` whose shim holds the task (default: the container's ID)")
	fl.StringArrayVar(&f.labels, "label", nil, "container label K=V (repeatable)")
	fl.StringVar(&f.snapshotter, "snapshotter", "", "snapshotter of the rootfs (default: the daemon's)")
	fl.BoolVar(&f.seccomp, "seccomp", true, "the runtime default seccomp profile (--seccomp=false: none, as ctr run has it)")
	return markStreaming(cmd)
}

// runtimeErrOr keeps an exitStatus, and makes any other error a runtime
// error (exit 125).
func runtimeErrOr(err error) error {
	if _, ok := err.(*exitStatus); ok || err == nil {
		return err
	}
	return runtimeErr(err)
}

func runRun(cmd *cobra.Command, g *globals, f runFlags, ref, id string, args []string) error {
	spec, err := f.container(ref, id, args)
	if err != nil {
		return err
	}
	if f.rm && f.detach {
		return fmt.Errorf("--rm with -d: nothing would remove the container: %w", errdefs.ErrInvalidArgument)
	}
	ctx, c, err := g.connect(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ensureImage(cmd, ctx, c, spec.Image); err != nil {
		return err
	}
	if _, err := c.Containers().CreateFromImage(ctx, spec); err != nil {
		return err
	}
	r := &runner{ctx: ctx, c: c, id: id, rm: f.rm}
	if f.detach {
		return r.undoOnError(r.startDetached())
	}
	return r.undoOnError(r.runAttached(cmd, f.tty))
}

// container is the container of the flags.
func (f runFlags) container(ref, id string, args []string) (client.ImageContainer, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return client.ImageContainer{}, err
	}
	spec := client.ImageContainer{
		ID: id, Image: named.String(), Runtime: f.runtime, Args: args, Env: f.env, HostNetwork: f.netHost,
		Terminal: f.tty, Group: f.group, Snapshotter: f.snapshotter, NoSeccomp: !f.seccomp,
	}
	for _, kv := range f.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return spec, fmt.Errorf("--env %q: want K=V: %w", kv, errdefs.ErrInvalidArgument)
		}
	}
	if spec.Labels, err = parseLabels(f.labels); err != nil {
		return spec, err
	}
	for _, m := range f.mounts {
		mnt, err := parseMount(m)
		if err != nil {
			return spec, err
		}
		spec.Mounts = append(spec.Mounts, mnt)
	}
	if f.memory != "" {
		if spec.MemoryLimit, err = parseBytes(f.memory); err != nil {
			return spec, fmt.Errorf("--memory: %w", err)
		}
	}
	return spec, nil
}

// parseMount parses type=bind,src=S,dst=D[,options=O[:O]...].
func parseMount(s string) (client.Mount, error) {
	var m client.Mount
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || v == "" {
			return m, fmt.Errorf("--mount %q: %q is not KEY=VALUE: %w", s, field, errdefs.ErrInvalidArgument)
		}
		switch k {
		case "type":
			m.Type = v
		case "src", "source":
			m.Source = v
		case "dst", "destination", "target":
			m.Destination = v
		case "options":
			m.Options = strings.Split(v, ":")
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q (type, src, dst, options): %w", s, k, errdefs.ErrInvalidArgument)
		}
	}
	if m.Type != "bind" || m.Source == "" || m.Destination == "" {
		return m, fmt.Errorf("--mount %q: want type=bind,src=HOST,dst=PATH: %w", s, errdefs.ErrInvalidArgument)
	}
	return m, nil
}

// parseBytes parses a positive size in bytes, with an optional k, m or g
// suffix (KiB, MiB, GiB).
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a positive number of bytes: %w", s, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}

// ensureImage pulls name unless the daemon has it, showing the progress
// on stderr.
func ensureImage(cmd *cobra.Command, ctx context.Context, c *client.Client, name string) error {
	if _, err := c.Images().Get(ctx, name); !errdefs.IsNotFound(err) {
		return err
	}
	out := cmd.ErrOrStderr()
	var disp pullDisplay = newPlainDisplay(out)
	if isTerminal(out) {
		disp = newBarDisplay(ctx, out)
	}
	_, err := c.Pull(ctx, name, client.WithPullProgress(disp.update))
	disp.finish(err == nil)
	return err
}

// runner runs one container's task.
type runner struct {
	ctx     context.Context
	c       *client.Client
	id      string
	rm      bool
	created bool // the task exists
}

// undoOnError removes what run made when err is a failure of the run, not
// the container's exit: the task, and the container with its snapshot.
func (r *runner) undoOnError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*exitStatus); ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), time.Minute)
	defer cancel()
	if r.created {
		_ = r.c.Tasks().Kill(ctx, r.id, syscall.SIGKILL, client.KillOpts{All: true})
		_, _ = r.c.Tasks().Wait(ctx, r.id, "")
		_, _ = r.c.Tasks().Delete(ctx, r.id, "")
	}
	_ = r.c.Containers().Delete(ctx, r.id)
	return err
}

func (r *runner) startDetached() error {
	if _, _, err := r.c.Tasks().Create(r.ctx, r.id, client.CreateTaskOpts{}); err != nil {
		return err
	}
	r.created = true
	_, err := r.c.Tasks().Start(r.ctx, r.id, "")
	return err
}

// runAttached creates the task with its streams relayed here, starts it,
// waits for its exit, deletes it (and with --rm the container) and
// returns its exit code.
func (r *runner) runAttached(cmd *cobra.Command, tty bool) error {
	tasks := r.c.Tasks()
	if _, _, err := tasks.Create(r.ctx, r.id, client.CreateTaskOpts{Stdin: true, Stdout: true, Stderr: !tty}); err != nil {
		return err
	}
	r.created = true
	exit, err := attachAndStart(r.ctx, cmd, tasks, r.id, "", tty)
	if err != nil {
		return err
	}
	// The process has exited: what is left is the runtime's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), time.Minute)
	defer cancel()
	if _, err := tasks.Delete(ctx, r.id, ""); err != nil {
		return err
	}
	r.created = false
	if r.rm {
		if err := r.c.Containers().Delete(ctx, r.id); err != nil {
			return err
		}
	}
	return &exitStatus{code: int(exit.Status)}
}

// attachAndStart attaches this terminal's streams to a created process,
// starts it and waits for its exit. With tty, this terminal is in raw
// mode and the process's follows its size; else the signals that end the
// CLI are passed on to the process.
func attachAndStart(ctx context.Context, cmd *cobra.Command, tasks *client.TaskService, id, execID string, tty bool) (client.Exit, error) {
	streams := client.Streams{Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if tty {
		streams.Stderr = nil // a terminal is one stream
		if restore := rawTerminal(streams.Stdin); restore != nil {
			defer restore()
		}
	}
	a, err := tasks.Attach(ctx, id, execID, streams)
	if err != nil {
		return client.Exit{}, err
	}
	// Before the start, so that a container sees its size from its first
	// read (an exec's terminal, made at its start, is sized by Exec).
	stop := relaySignals(ctx, tasks, id, execID, tty, streams.Stdout)
	defer stop()
	if _, err := tasks.Start(ctx, id, execID); err != nil {
		return client.Exit{}, err
	}
	return a.Wait()
}

// rawTerminal puts in into raw mode if it is a terminal and returns the
// function that restores it; nil if it is not one.
func rawTerminal(in io.Reader) func() {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	st, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil
	}
	return func() { _ = term.Restore(int(f.Fd()), st) }
}

// relaySignals passes what this process receives on to the process: with
// tty, the window size (now and on SIGWINCH); without, SIGINT, SIGTERM,
// SIGHUP and SIGQUIT. The returned function stops it.
func relaySignals(ctx context.Context, tasks *client.TaskService, id, execID string, tty bool, out io.Writer) func() {
	ch := make(chan os.Signal, 4)
	done := make(chan struct{})
	if tty {
		signal.Notify(ch, syscall.SIGWINCH)
		if execID == "" {
			resize(ctx, tasks, id, execID, out)
		}
	} else {
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	}
	go func() {
		for {
			select {
			case s := <-ch:
				if s == syscall.SIGWINCH {
					resize(ctx, tasks, id, execID, out)
				} else {
					_ = tasks.Kill(ctx, id, s.(syscall.Signal), client.KillOpts{ExecID: execID})
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// resize gives the process the size of the terminal out.
func resize(ctx context.Context, tasks *client.TaskService, id, execID string, out io.Writer) {
	if w, h := terminalSize(out); w > 0 {
		_ = tasks.Resize(ctx, id, execID, w, h)
	}
}

// terminalSize is the size of the terminal out, 0 when not one.
func terminalSize(out io.Writer) (width, height uint16) {
	f, ok := out.(*os.File)
	if !ok {
		return 0, 0
	}
	w, h, err := term.GetSize(int(f.Fd()))
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return 0, 0
	}
	return uint16(w), uint16(h)
}
