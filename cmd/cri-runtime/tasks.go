package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

func newTasksCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tasks",
		Aliases: []string{"task", "t"},
		Short:   "Manage the processes of containers",
	}
	cmd.AddCommand(
		tasksListCommand(g), tasksPsCommand(g), tasksKillCommand(g),
		tasksOneCommand(g, "pause", "Freeze a task", (*client.TaskService).Pause),
		tasksOneCommand(g, "resume", "Thaw a task", (*client.TaskService).Resume),
		tasksExecCommand(g), tasksMetricsCommand(g), tasksRemoveCommand(g),
		tasksCheckpointCommand(g), tasksRestoreCommand(g),
	)
	return cmd
}

// formatTaskStatus is the STATUS column of a task: its state, and how a
// stopped one exited.
func formatTaskStatus(p client.Process) string {
	if p.Exit == nil {
		return p.Status
	}
	if p.Exit.Reason != "" {
		return fmt.Sprintf("%s (exit %d, %s)", p.Status, p.Exit.Status, p.Exit.Reason)
	}
	return fmt.Sprintf("%s (exit %d)", p.Status, p.Exit.Status)
}

func tasksListCommand(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the tasks: ID, PID, STATUS (a stopped one with its exit code and reason)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Tasks().List(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, p := range list {
					fmt.Fprintln(out, p.ContainerID)
				}
				return nil
			case g.json():
				return writeJSON(out, nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "ID\tPID\tSTATUS")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", p.ContainerID, p.Pid, formatTaskStatus(p))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

func tasksPsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ps ID",
		Short: "List the processes of a task: PID, and the exec ID of those started by exec",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Tasks().Pids(ctx, args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "PID\tEXEC")
			for _, p := range list {
				exec := p.ExecID
				if exec == "" {
					exec = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\n", p.Pid, exec)
			}
			return tw.Flush()
		},
	}
}

func tasksKillCommand(g *globals) *cobra.Command {
	var sig, execID string
	var all bool
	var pid uint32
	cmd := &cobra.Command{
		Use:   "kill [--signal SIG] [--all | --pid PID | --exec-id ID] ID",
		Short: "Signal a task: its init process, all its processes, one by pid, or an exec process",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := task.ParseSignal(sig)
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Tasks().Kill(ctx, args[0], s, client.KillOpts{ExecID: execID, All: all, Pid: pid})
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "SIGTERM", "signal by name (SIGKILL, KILL, kill) or number")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "every process of the container")
	cmd.Flags().Uint32Var(&pid, "pid", 0, "one process of the container, by its pid on the host")
	cmd.Flags().StringVar(&execID, "exec-id", "", "an exec process")
	return cmd
}

// tasksOneCommand is a verb that takes a task ID and does fn.
func tasksOneCommand(g *globals, verb, short string, fn func(*client.TaskService, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return fn(c.Tasks(), ctx, args[0])
		},
	}
}

func tasksExecCommand(g *globals) *cobra.Command {
	var execID, cwd string
	var tty, detach bool
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [-t] [-d] --exec-id ID [--env K=V]... [--cwd DIR] CONTAINER CMD...",
		Short: "Run a process in a running container",
		Long: "Run a process in a running container, as the container's process (user, capabilities, env)\n" +
			"with CMD. Unless -d, its streams are relayed and the exit code is the process's, 125 when it\n" +
			"could not be run; the process is deleted once it exited.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if execID == "" {
				return runtimeErr(fmt.Errorf("--exec-id: required: %w", errdefs.ErrInvalidArgument))
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return runtimeErr(err)
			}
			defer c.Close()
			tasks, id := c.Tasks(), args[0]
			opts := client.ExecOpts{Args: args[1:], Env: env, Cwd: cwd, Terminal: tty, Stdin: !detach, Stdout: !detach, Stderr: !detach && !tty}
			if tty {
				opts.Width, opts.Height = terminalSize(cmd.OutOrStdout())
			}
			if err := tasks.Exec(ctx, id, execID, opts); err != nil {
				return runtimeErr(err)
			}
			if detach {
				_, err := tasks.Start(ctx, id, execID)
				return runtimeErr(err)
			}
			exit, err := attachAndStart(ctx, cmd, tasks, id, execID, tty)
			if _, derr := tasks.Delete(context.WithoutCancel(ctx), id, execID); err == nil && derr != nil {
				err = derr
			}
			if err != nil {
				return runtimeErr(err)
			}
			return &exitStatus{code: int(exit.Status)}
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&execID, "exec-id", "", "`ID` of the exec process (required)")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the process a terminal")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "start it and return (delete it with tasks rm --exec-id)")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "environment variable K=V (repeatable)")
	cmd.Flags().StringVar(&cwd, "cwd", "", "working directory")
	return markStreaming(cmd)
}

func tasksMetricsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "metrics ID",
		Short: "Print the cgroup statistics of a running task",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := c.Tasks().Metrics(ctx, args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			limit := func(n uint64, f func(int64) string) string {
				if n == 0 {
					return "none"
				}
				return f(int64(n))
			}
			count := func(n int64) string { return strconv.FormatInt(n, 10) }
			tw := newTable(cmd)
			for _, row := range [][2]string{
				{"CPU", fmt.Sprintf("%.3f s (user %.3f s, system %.3f s)", float64(m.CPUUsageNanos)/1e9, float64(m.CPUUserNanos)/1e9, float64(m.CPUSystemNanos)/1e9)},
				{"MEMORY", fmt.Sprintf("%s (working set %s, rss %s, cache %s), limit %s", formatSize(int64(m.MemoryUsage)),
					formatSize(int64(m.MemoryWorkingSet)), formatSize(int64(m.MemoryRSS)), formatSize(int64(m.MemoryCache)), limit(m.MemoryLimit, formatSize))},
				{"OOM KILLS", strconv.FormatUint(m.OOMKills, 10)},
				{"PIDS", fmt.Sprintf("%d, limit %s", m.PidsCurrent, limit(m.PidsLimit, count))},
				{"IO", fmt.Sprintf("read %s in %d ops, written %s in %d ops", formatSize(int64(m.IOReadBytes)), m.IOReadOps, formatSize(int64(m.IOWriteBytes)), m.IOWriteOps)},
			} {
				fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
			}
			return tw.Flush()
		},
	}
}

func tasksRemoveCommand(g *globals) *cobra.Command {
	var force bool
	var execID string
	cmd := &cobra.Command{
		Use:     "rm [--force] [--exec-id ID] ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Delete stopped tasks (the containers stay), or one exec process",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if execID != "" {
				_, err := c.Tasks().Delete(ctx, args[0], execID)
				return err
			}
			var failed error
			for _, id := range args {
				if err := removeTask(ctx, c.Tasks(), id, force); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "cri-runtime: %v\n", err)
					failed = err
				}
			}
			if failed != nil {
				return &exitStatus{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running task first")
	cmd.Flags().StringVar(&execID, "exec-id", "", "delete this exec process of the task")
	return cmd
}

func tasksCheckpointCommand(g *globals) *cobra.Command {
	var imagePath, workPath string
	var exit bool
	cmd := &cobra.Command{
		Use:   "checkpoint --image-path DIR [--exit] ID",
		Short: "Checkpoint a running task with CRIU",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := absDir("--image-path", imagePath)
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Tasks().Checkpoint(ctx, args[0], dir, workPath, exit)
		},
	}
	cmd.Flags().StringVar(&imagePath, "image-path", "", "`DIR` of the CRIU images (required)")
	cmd.Flags().StringVar(&workPath, "work-path", "", "`DIR` of CRIU's logs")
	cmd.Flags().BoolVar(&exit, "exit", false, "stop the task after the checkpoint")
	return cmd
}

func tasksRestoreCommand(g *globals) *cobra.Command {
	var imagePath, group string
	cmd := &cobra.Command{
		Use:   "restore --image-path DIR [--group G] ID",
		Short: "Create and start the task of a container from a CRIU checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := absDir("--image-path", imagePath)
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, _, err := c.Tasks().Create(ctx, args[0], client.CreateTaskOpts{Group: group, Checkpoint: dir}); err != nil {
				return err
			}
			if _, err := c.Tasks().Start(ctx, args[0], ""); err != nil {
				_, _ = c.Tasks().Delete(context.WithoutCancel(ctx), args[0], "")
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&imagePath, "image-path", "", "`DIR` of the CRIU images (required)")
	cmd.Flags().StringVar(&group, "group", "", "`GROUP` whose shim holds the task (default: the container's)")
	return cmd
}

// absDir is dir made absolute; InvalidArgument when empty.
func absDir(flag, dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%s: required: %w", flag, errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v: %w", flag, dir, err, errdefs.ErrInvalidArgument)
	}
	return abs, nil
}
