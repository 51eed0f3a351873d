package main

import (
	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/server"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the daemon's configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the default configuration file, with every key documented",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.WriteDefault(cmd.OutOrStdout())
		},
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Load and validate a configuration file",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			_, err := server.LoadConfig(args[0])
			return err
		},
	})
	return cmd
}
