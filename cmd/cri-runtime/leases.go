package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func newLeasesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "leases",
		Aliases: []string{"lease"},
		Short:   "Manage leases, which hold resources against garbage collection",
	}
	cmd.AddCommand(leasesCreateCommand(g), leasesListCommand(g), leasesRemoveCommand(g))
	return cmd
}

func leasesCreateCommand(g *globals) *cobra.Command {
	var id string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create [KEY=VALUE...]",
		Short: "Create a lease and print its ID",
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires < 0 {
				return fmt.Errorf("--expires %v: must not be negative: %w", expires, errdefs.ErrInvalidArgument)
			}
			labels, err := parseLabels(args)
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			opts := []client.LeaseOpt{client.WithLeaseLabels(labels)}
			if id != "" {
				opts = append(opts, client.WithLeaseID(id))
			}
			if expires != 0 {
				opts = append(opts, client.WithExpiration(expires))
			}
			l, err := c.Leases().Create(ctx, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), l.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "lease ID (default: generated)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "expire the lease after this `DURATION`, > 0 (default: never)")
	return cmd
}

// leaseJSON is how -o json prints a lease: without an expiry when it has
// none.
type leaseJSON struct {
	ID        string
	Labels    map[string]string `json:",omitempty"`
	CreatedAt time.Time
	ExpiresAt *time.Time `json:",omitempty"`
}

func leasesListCommand(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List leases matching any of the filters",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Leases().List(ctx, args...)
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, l := range list {
					fmt.Fprintln(cmd.OutOrStdout(), l.ID)
				}
				return nil
			case g.json():
				out := make([]leaseJSON, 0, len(list))
				for _, l := range list {
					j := leaseJSON{ID: l.ID, Labels: l.Labels, CreatedAt: l.CreatedAt}
					if !l.ExpiresAt.IsZero() {
						j.ExpiresAt = &l.ExpiresAt
					}
					out = append(out, j)
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "ID\tCREATED\tEXPIRES\tLABELS")
			for _, l := range list {
				expires := "-"
				if !l.ExpiresAt.IsZero() {
					expires = l.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.ID, l.CreatedAt.Format(time.RFC3339), expires, formatLabels(l.Labels))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

func leasesRemoveCommand(g *globals) *cobra.Command {
	var sync bool
	cmd := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove leases",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []client.DeleteOpt
			if sync {
				opts = append(opts, client.SynchronousDelete())
			}
			for _, id := range args {
				if err := c.Leases().Delete(ctx, meta.Lease{ID: id}, opts...); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&sync, "sync", false, "return after garbage collection has removed what only the leases held")
	return cmd
}
