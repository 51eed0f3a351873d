package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func newContainersCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "containers",
		Aliases: []string{"container", "c"},
		Short:   "Manage container records (their processes: see tasks)",
	}
	cmd.AddCommand(containersListCommand(g), containersInfoCommand(g), containersRemoveCommand(g))
	return cmd
}

// containerView is a container as -o json and info print it: the spec as
// JSON, the status with its state by name.
type containerView struct {
	ID          string            `json:"id"`
	Labels      map[string]string `json:"labels,omitempty"`
	Image       string            `json:"image,omitempty"`
	Runtime     string            `json:"runtime"`
	Snapshotter string            `json:"snapshotter,omitempty"`
	SnapshotKey string            `json:"snapshotKey,omitempty"`
	SandboxID   string            `json:"sandboxID,omitempty"`
	Status      statusView        `json:"status"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Spec        json.RawMessage   `json:"spec,omitempty"`
}

type statusView struct {
	State      string    `json:"state"`
	Pid        uint32    `json:"pid,omitempty"`
	ExitCode   int32     `json:"exitCode"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
}

func viewContainer(c meta.Container, withSpec bool) containerView {
	v := containerView{
		ID: c.ID, Labels: c.Labels, Image: c.Image, Runtime: c.Runtime.Name, Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey, SandboxID: c.SandboxID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Status: statusView{
			State: c.Status.State.String(), Pid: c.Status.Pid, ExitCode: c.Status.ExitCode, StartedAt: c.Status.StartedAt,
			FinishedAt: c.Status.FinishedAt, Reason: c.Status.Reason, Message: c.Status.Message,
		},
	}
	if withSpec && json.Valid(c.Spec) {
		v.Spec = c.Spec
	}
	return v
}

// formatStatus is the STATUS column of a container: its last known state,
// with the exit code and reason of an exit.
func formatStatus(st meta.Status) string {
	switch st.State {
	case meta.StateExited:
		if st.Reason != "" && st.Reason != "Completed" && st.Reason != "Error" {
			return fmt.Sprintf("exited (%d, %s)", st.ExitCode, st.Reason)
		}
		return fmt.Sprintf("exited (%d)", st.ExitCode)
	case meta.StateRunning, meta.StatePaused, meta.StateCreated:
		return fmt.Sprintf("%s (pid %d)", st.State, st.Pid)
	}
	return st.State.String()
}

func containersListCommand(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List containers matching any of the filters, with their last known status",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Containers().List(ctx, args...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, ct := range list {
					fmt.Fprintln(out, ct.ID)
				}
				return nil
			case g.json():
				views := make([]containerView, 0, len(list))
				for _, ct := range list {
					views = append(views, viewContainer(ct, false))
				}
				return writeJSON(out, views)
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "ID\tIMAGE\tRUNTIME\tSTATUS")
			for _, ct := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ct.ID, ct.Image, ct.Runtime.Name, formatStatus(ct.Status))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

func containersInfoCommand(g *globals) *cobra.Command {
	var spec bool
	cmd := &cobra.Command{
		Use:   "info ID",
		Short: "Print a container as JSON: record, last known status (exit code, reason), spec with --spec",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ct, err := c.Containers().Get(ctx, args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), viewContainer(ct, spec))
		},
	}
	cmd.Flags().BoolVar(&spec, "spec", false, "include the runtime-spec")
	return cmd
}

func containersRemoveCommand(g *globals) *cobra.Command {
	var force, keep bool
	cmd := &cobra.Command{
		Use:     "rm [--force] [--keep-snapshot] ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove containers: the record, its snapshot and its log; a stopped task first",
		Long: "Remove containers: a task that is stopped (or never started) is deleted first, a running one\n" +
			"only with --force (killed with SIGKILL). Then the record, its snapshot (unless\n" +
			"--keep-snapshot) and its log file.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []client.ContainerDeleteOpt
			if keep {
				opts = append(opts, client.KeepSnapshot())
			}
			var failed error
			for _, id := range args {
				if err := removeContainer(ctx, c, id, force, opts); err != nil {
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
	cmd.Flags().BoolVar(&keep, "keep-snapshot", false, "leave the snapshot (to the garbage collector)")
	return cmd
}

// removeContainer deletes the task of container id (a live one only with
// force), then the container.
func removeContainer(ctx context.Context, c *client.Client, id string, force bool, opts []client.ContainerDeleteOpt) error {
	if err := removeTask(ctx, c.Tasks(), id, force); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return c.Containers().Delete(ctx, id, opts...)
}

// removeTask deletes the task id: a stopped or created one at once, a
// running or paused one with force after SIGKILL to all its processes.
func removeTask(ctx context.Context, tasks *client.TaskService, id string, force bool) error {
	p, err := tasks.Get(ctx, id, "")
	if err != nil {
		return err
	}
	if p.Status == "running" || p.Status == "paused" {
		if !force {
			return fmt.Errorf("task %q is %s: kill it first, or --force: %w", id, p.Status, errdefs.ErrFailedPrecondition)
		}
		if err := tasks.Kill(ctx, id, syscall.SIGKILL, client.KillOpts{All: true}); err != nil && !errdefs.IsFailedPrecondition(err) {
			return err
		}
		if p.Status == "paused" {
			_ = tasks.Resume(ctx, id) // a frozen process cannot die
		}
		if _, err := tasks.Wait(ctx, id, ""); err != nil {
			return err
		}
	}
	_, err = tasks.Delete(ctx, id, "")
	return err
}
