package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// SnapshotterEnv overrides the daemon's default snapshotter for the CLI.
const SnapshotterEnv = "CRI_RUNTIME_SNAPSHOTTER"

// snapshotsFlags are the flags every snapshots verb shares.
type snapshotsFlags struct {
	g           *globals
	snapshotter string // "" for the daemon's default
}

func newSnapshotsCommand(g *globals) *cobra.Command {
	f := &snapshotsFlags{g: g}
	cmd := &cobra.Command{
		Use:     "snapshots",
		Aliases: []string{"snapshot", "s"},
		Short:   "Manage snapshots: filesystem layers and container root filesystems",
	}
	cmd.PersistentFlags().StringVar(&f.snapshotter, "snapshotter", os.Getenv(SnapshotterEnv),
		"snapshotter (env "+SnapshotterEnv+"; default: the daemon's, "+server.DefaultSnapshotter+" unless configured otherwise or unsupported)")
	cmd.AddCommand(
		snapshotsListCommand(f),
		snapshotsInfoCommand(f),
		snapshotsUsageCommand(f),
		snapshotsCreateCommand(f, "prepare"),
		snapshotsCreateCommand(f, "view"),
		snapshotsCommitCommand(f),
		snapshotsRemoveCommand(f),
		snapshotsMountsCommand(f),
		snapshotsLabelCommand(f),
	)
	return cmd
}

// connect returns a client of the daemon, a ctx in the namespace of the
// flags and the snapshotter of the flags, else the daemon's default. The
// caller closes the client.
func (f *snapshotsFlags) connect(cmd *cobra.Command) (context.Context, *client.Client, snapshot.Snapshotter, error) {
	ctx, c, err := f.g.connect(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	name := f.snapshotter
	if name == "" {
		if name, err = defaultSnapshotter(ctx, c); err != nil {
			c.Close()
			return nil, nil, nil, err
		}
	}
	return ctx, c, c.Snapshotter(name), nil
}

// defaultSnapshotter asks the daemon which snapshotter is its default.
func defaultSnapshotter(ctx context.Context, c *client.Client) (string, error) {
	list, err := c.Snapshotters(ctx)
	if err != nil {
		return "", err
	}
	for _, sn := range list {
		if sn.Default {
			return sn.Name, nil
		}
	}
	return server.DefaultSnapshotter, nil
}

func snapshotsListCommand(f *snapshotsFlags) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List snapshots matching any of the filters",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var list []infoJSON
			err = sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
				list = append(list, snapshotJSON(info))
				return nil
			}, args...)
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, info := range list {
					fmt.Fprintln(cmd.OutOrStdout(), info.Name)
				}
				return nil
			case f.g.json():
				return writeJSON(cmd.OutOrStdout(), nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "KEY\tPARENT\tKIND\tLABELS")
			for _, info := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", info.Name, info.Parent, info.Kind, formatLabels(info.Labels))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the keys")
	return cmd
}

// infoJSON is how `snapshots info` prints a snapshot: Info with its kind
// by name.
type infoJSON struct {
	Kind    string
	Name    string
	Parent  string            `json:",omitempty"`
	Labels  map[string]string `json:",omitempty"`
	Created time.Time
	Updated time.Time
}

func snapshotJSON(info snapshot.Info) infoJSON {
	return infoJSON{
		Kind:    info.Kind.String(),
		Name:    info.Name,
		Parent:  info.Parent,
		Labels:  info.Labels,
		Created: info.Created,
		Updated: info.Updated,
	}
}

func snapshotsInfoCommand(f *snapshotsFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "info KEY",
		Short: "Print a snapshot's info as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := sn.Stat(ctx, args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), snapshotJSON(info))
		},
	}
}

// usageJSON is how -o json prints a snapshot's usage, in bytes.
type usageJSON struct {
	Key    string
	Size   int64
	Inodes int64
}

func snapshotsUsageCommand(f *snapshotsFlags) *cobra.Command {
	var bytes bool
	cmd := &cobra.Command{
		Use:   "usage [KEY...]",
		Short: "Print the disk usage of snapshots' own layers (default: every snapshot)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			keys := args
			if len(keys) == 0 {
				err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
					keys = append(keys, info.Name)
					return nil
				})
				if err != nil {
					return err
				}
			}
			size := formatSize
			if bytes {
				size = func(n int64) string { return fmt.Sprint(n) }
			}
			usages := make([]usageJSON, 0, len(keys))
			for _, key := range keys {
				u, err := sn.Usage(ctx, key)
				if errdefs.IsNotFound(err) && len(args) == 0 {
					continue // removed since the walk
				}
				if err != nil {
					return err
				}
				usages = append(usages, usageJSON{Key: key, Size: u.Size, Inodes: u.Inodes})
			}
			if f.g.json() {
				return writeJSON(cmd.OutOrStdout(), usages)
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "KEY\tSIZE\tINODES")
			for _, u := range usages {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", u.Key, size(u.Size), u.Inodes)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&bytes, "bytes", false, "print sizes in bytes")
	return cmd
}

// gcRoot adds the garbage collector's root label to labels, as ctr does:
// a snapshot made by hand is kept until removed by hand.
func gcRoot(labels map[string]string) map[string]string {
	if _, ok := labels[meta.LabelGCRoot]; !ok {
		labels[meta.LabelGCRoot] = time.Now().UTC().Format(time.RFC3339)
	}
	return labels
}

// snapshotsCreateCommand is `prepare` (verb "prepare") or `view`.
func snapshotsCreateCommand(f *snapshotsFlags, verb string) *cobra.Command {
	var (
		target string
		labels []string
	)
	short := "Create the active snapshot KEY over the committed PARENT"
	if verb == "view" {
		short = "Create the read-only snapshot KEY over the committed PARENT"
	}
	cmd := &cobra.Command{
		Use:   verb + " KEY [PARENT]",
		Short: short,
		Long:  short + ".\nThe snapshot is labelled " + meta.LabelGCRoot + ": it is kept until removed.",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			var parent string
			if len(args) == 2 {
				parent = args[1]
			}
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			create := sn.Prepare
			if verb == "view" {
				create = sn.View
			}
			mounts, err := create(ctx, args[0], parent, snapshot.WithLabels(gcRoot(l)))
			if err != nil {
				return err
			}
			if target != "" {
				printMounts(cmd.OutOrStdout(), target, mounts)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&target, "target", "t", "", "print the mount commands that mount the snapshot on this directory")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE of the new snapshot (repeatable)")
	return cmd
}

func snapshotsCommitCommand(f *snapshotsFlags) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "commit NAME KEY",
		Short: "Commit the active snapshot KEY as the committed snapshot NAME",
		Long: "Commit the active snapshot KEY as the committed snapshot NAME.\n" +
			"NAME is labelled " + meta.LabelGCRoot + ": it is kept until removed.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return sn.Commit(ctx, args[0], args[1], snapshot.WithLabels(gcRoot(l)))
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE of the committed snapshot (repeatable)")
	return cmd
}

func snapshotsRemoveCommand(f *snapshotsFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm KEY...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove snapshots; a parent goes only after its children",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, key := range args {
				if err := sn.Remove(ctx, key); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), key)
			}
			return nil
		},
	}
}

func snapshotsMountsCommand(f *snapshotsFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "mounts TARGET KEY",
		Short: "Print the mount commands that mount the active or view snapshot KEY on TARGET",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			mounts, err := sn.Mounts(ctx, args[1])
			if err != nil {
				return err
			}
			printMounts(cmd.OutOrStdout(), args[0], mounts)
			return nil
		},
	}
}

func snapshotsLabelCommand(f *snapshotsFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "label KEY KEY=VALUE...",
		Short: "Set labels of a snapshot; KEY= removes one",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			ctx, c, sn, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			paths, set := labelPaths(labels)
			_, err = sn.Update(ctx, snapshot.Info{Name: args[0], Labels: set}, paths...)
			return err
		},
	}
}

// printMounts prints one `mount -t TYPE SOURCE TARGET -o OPTIONS` line per
// mount, as ctr does; -o is left out of a mount without options.
func printMounts(w io.Writer, target string, mounts []snapshot.Mount) {
	for _, m := range mounts {
		line := fmt.Sprintf("mount -t %s %s %s", m.Type, m.Source, filepath.Join(target, m.Target))
		if len(m.Options) > 0 {
			line += " -o " + strings.Join(m.Options, ",")
		}
		fmt.Fprintln(w, line)
	}
}
