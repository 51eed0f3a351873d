package main

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cri"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

func newServeCommand(g *globals) *cobra.Command {
	var configPath, root, state, metricsAddress, criAddress string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon until SIGTERM or SIGINT",
		Long: "Run the daemon. Settings come from the defaults, then the --config file, then the flags;\n" +
			"--address sets the management socket, --cri-address the CRI socket.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := server.DefaultConfig()
			if configPath != "" {
				var err error
				if cfg, err = server.LoadConfig(configPath); err != nil {
					return err
				}
			}
			flags := cmd.Flags()
			if flags.Changed("root") {
				cfg.Root = root
			}
			if flags.Changed("state") {
				cfg.State = state
			}
			if flags.Changed("address") {
				cfg.GRPC.Address = g.address
			}
			if flags.Changed("metrics-address") {
				cfg.Metrics.Address = metricsAddress
			}
			if flags.Changed("cri-address") {
				cfg.CRI.Address = criAddress
			}
			return serve(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "TOML config `FILE`, as printed by \"cri-runtime config default\"")
	cmd.Flags().StringVar(&root, "root", server.DefaultRoot, "`DIR` of persistent data")
	cmd.Flags().StringVar(&state, "state", server.DefaultState, "`DIR` of runtime state")
	cmd.Flags().StringVar(&criAddress, "cri-address", cri.DefaultConfig().Address, "unix socket `PATH` of the CRI (kubelet's --container-runtime-endpoint), \"\" to serve none")
	cmd.Flags().StringVar(&metricsAddress, "metrics-address", server.DefaultMetricsAddress, "`HOST:PORT` of /metrics and /healthz, \"\" to disable")
	return cmd
}

// serve builds the daemon and serves until SIGTERM or SIGINT, which stop
// it cleanly: the command then exits 0.
func serve(ctx context.Context, cfg server.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := setupLogging(cfg.Log.Verbosity); err != nil {
		return err
	}
	defer klog.Flush()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if err := srv.Serve(ctx); err != nil {
		return err
	}
	klog.FromContext(ctx).Info("stopped")
	return nil
}

// setupLogging sets klog's verbosity; klog logs to stderr.
func setupLogging(verbosity int) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(verbosity)); err != nil {
		return fmt.Errorf("log verbosity %d: %w", verbosity, err)
	}
	return nil
}
