// Command cri-runtime is the daemon (`cri-runtime serve`) and its
// management CLI: flags and subcommands only, one file per noun. The work
// is done by pkg/server (the daemon) and pkg/client (the verbs).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

// AddressEnv overrides the default management socket of the CLI.
const AddressEnv = "CRI_RUNTIME_ADDRESS"

// LeaseEnv sets the lease of the CLI's calls when --lease is not given.
const LeaseEnv = "CRI_RUNTIME_LEASE"

// DefaultTimeout bounds the calls of a command that is not streaming.
const DefaultTimeout = time.Minute

// streamingAnnotation marks a command that lasts as long as its data or
// its user wants (pull, events, ingest, get): --timeout bounds it only
// when given.
const streamingAnnotation = "cri-runtime.io/streaming"

// globals are the flags every verb shares.
type globals struct {
	address   string
	namespace string
	lease     string        // "" for none
	timeout   time.Duration // 0 for none
	output    string        // outputTable or outputJSON

	cancels []context.CancelFunc // of the timeouts set by connect
}

func main() {
	root, g := newRoot()
	err := root.ExecuteContext(context.Background())
	for _, cancel := range g.cancels {
		cancel()
	}
	if err != nil {
		code := 1
		if st, ok := err.(*exitStatus); ok {
			// A container's exit code, or exitRuntimeError.
			if code, err = st.code, st.err; err == nil {
				os.Exit(code)
			}
		}
		fmt.Fprintf(os.Stderr, "cri-runtime: %v\n", g.explain(err))
		os.Exit(code)
	}
}

// explain adds to err what the user can do about it.
func (g *globals) explain(err error) error {
	if errdefs.IsDeadlineExceeded(err) && g.timeout > 0 {
		return fmt.Errorf("%w (--timeout %v; 0 for none)", err, g.timeout)
	}
	return err
}

// newRoot returns the root command and the globals its flags set.
func newRoot() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:           "cri-runtime",
		Short:         "A Kubernetes container runtime: the daemon and its management CLI",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.timeout < 0 {
				return fmt.Errorf("--timeout %v: must not be negative: %w", g.timeout, errdefs.ErrInvalidArgument)
			}
			return checkOutput(g.output)
		},
	}
	address := os.Getenv(AddressEnv)
	if address == "" {
		address = server.DefaultAddress
	}
	flags := root.PersistentFlags()
	flags.StringVar(&g.address, "address", address, "management `SOCKET` (env "+AddressEnv+")")
	flags.StringVarP(&g.namespace, "namespace", "n", namespaces.FromEnv(), "`NAMESPACE` of the calls (env "+namespaces.EnvVar+")")
	flags.StringVar(&g.lease, "lease", os.Getenv(LeaseEnv), "`ID` of a lease that holds what the calls create against garbage collection (env "+LeaseEnv+"; see leases create)")
	flags.DurationVar(&g.timeout, "timeout", DefaultTimeout, "bound on a command's calls, 0 for none (pull, events, content ingest and get: none unless given)")
	flags.StringVarP(&g.output, "output", "o", outputTable, "`FORMAT` of lists: table (narrow, summarised) or json (everything, in full)")
	pull := newPullCommand(g)
	root.AddCommand(
		newServeCommand(g),
		newConfigCommand(),
		newNamespacesCommand(g),
		newContentCommand(g),
		newImagesCommand(g),
		pull,
		newLeasesCommand(g),
		newSnapshotsCommand(g),
		newEventsCommand(g),
		newRunCommand(g),
		newContainersCommand(g),
		newTasksCommand(g),
	)
	markStreaming(pull)
	addFilterHelp(root)
	return root, g
}

// markStreaming marks cmd with streamingAnnotation.
func markStreaming(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[streamingAnnotation] = "true"
	return cmd
}

// connect returns a client of the daemon and a ctx with the namespace and
// the lease of the flags, bounded by --timeout. The caller closes the
// client.
func (g *globals) connect(cmd *cobra.Command) (context.Context, *client.Client, error) {
	ctx := namespaces.WithNamespace(cmd.Context(), g.namespace)
	if g.lease != "" {
		ctx = leases.WithLease(ctx, g.lease)
	}
	if d := g.callTimeout(cmd); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		g.cancels = append(g.cancels, cancel)
	}
	c, err := client.New(ctx, g.address)
	if err != nil {
		return nil, nil, err
	}
	return ctx, c, nil
}

// callTimeout is the bound of cmd's calls: --timeout, unless cmd is
// streaming and --timeout was not given.
func (g *globals) callTimeout(cmd *cobra.Command) time.Duration {
	if f := cmd.Flag("timeout"); f != nil && f.Changed {
		return g.timeout
	}
	if cmd.Annotations[streamingAnnotation] != "" {
		return 0
	}
	return g.timeout
}

// json reports whether lists are printed as JSON.
func (g *globals) json() bool { return g.output == outputJSON }

// parseLabels parses key=value arguments; "key=" removes the label key
// where labels are updated.
func parseLabels(args []string) (map[string]string, error) {
	labels := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value: %w", a, errdefs.ErrInvalidArgument)
		}
		labels[k] = v
	}
	return labels, nil
}

// labelPaths returns the "labels.<key>" field paths of labels, and labels
// without the keys to remove (empty values).
func labelPaths(labels map[string]string) ([]string, map[string]string) {
	paths := make([]string, 0, len(labels))
	set := map[string]string{}
	for k, v := range labels {
		paths = append(paths, "labels."+k)
		if v != "" {
			set[k] = v
		}
	}
	return paths, set
}

// newTable returns an aligned table writer on cmd's output; Flush it.
func newTable(cmd *cobra.Command) *tabwriter.Writer {
	return tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
}
