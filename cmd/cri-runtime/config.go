package main

import (
	"fmt"

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
		Long: "Print the default configuration file, every key with its meaning, unit and default.\n" +
			"Install it with: mkdir -p /etc/cri-runtime && cri-runtime config default > /etc/cri-runtime/config.toml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.WriteDefault(cmd.OutOrStdout())
		},
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Load and validate a configuration file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := server.LoadConfig(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (root %s, state %s, socket %s)\n", args[0], cfg.Root, cfg.State, cfg.GRPC.Address)
			return nil
		},
	})
	return cmd
}
