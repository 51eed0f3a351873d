package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newNamespacesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespaces",
		Aliases: []string{"namespace", "ns"},
		Short:   "Manage namespaces",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "create NAME [KEY=VALUE...]",
			Short: "Create a namespace with labels",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				labels, err := parseLabels(args[1:])
				if err != nil {
					return err
				}
				ctx, c, err := g.connect(cmd)
				if err != nil {
					return err
				}
				defer c.Close()
				return c.Namespaces().Create(ctx, args[0], labels)
			},
		},
		namespacesListCommand(g),
		&cobra.Command{
			Use:   "label NAME KEY=VALUE...",
			Short: "Set labels of a namespace; KEY= removes one",
			Args:  cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				labels, err := parseLabels(args[1:])
				if err != nil {
					return err
				}
				ctx, c, err := g.connect(cmd)
				if err != nil {
					return err
				}
				defer c.Close()
				for k, v := range labels {
					if err := c.Namespaces().SetLabel(ctx, args[0], k, v); err != nil {
						return err
					}
				}
				return nil
			},
		},
		&cobra.Command{
			Use:     "rm NAME...",
			Aliases: []string{"remove", "delete"},
			Short:   "Remove empty namespaces",
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, c, err := g.connect(cmd)
				if err != nil {
					return err
				}
				defer c.Close()
				for _, name := range args {
					if err := c.Namespaces().Delete(ctx, name); err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), name)
				}
				return nil
			},
		},
	)
	return cmd
}

func namespacesListCommand(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List namespaces",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.Namespaces().List(ctx)
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, ns := range list {
					fmt.Fprintln(cmd.OutOrStdout(), ns.Name)
				}
				return nil
			case g.json():
				return writeJSON(cmd.OutOrStdout(), nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "NAME\tLABELS")
			for _, ns := range list {
				fmt.Fprintf(tw, "%s\t%s\n", ns.Name, formatLabels(ns.Labels))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the names")
	return cmd
}
