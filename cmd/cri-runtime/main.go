// Command cri-runtime is the daemon (`cri-runtime serve`) and its
// management CLI: flags and subcommands only, one file per noun. The work
// is done by pkg/server (the daemon) and pkg/client (the verbs).
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

// AddressEnv overrides the default management socket of the CLI.
const AddressEnv = "CRI_RUNTIME_ADDRESS"

// globals are the flags every verb shares.
type globals struct {
	address   string
	namespace string
}

func main() {
	if err := newRootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "cri-runtime: %v\n", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "cri-runtime",
		Short:         "A Kubernetes container runtime: the daemon and its management CLI",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	address := os.Getenv(AddressEnv)
	if address == "" {
		address = server.DefaultAddress
	}
	root.PersistentFlags().StringVar(&g.address, "address", address, "management socket (env "+AddressEnv+")")
	root.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", namespaces.FromEnv(), "namespace (env "+namespaces.EnvVar+")")
	root.AddCommand(
		newServeCommand(g),
		newConfigCommand(),
		newNamespacesCommand(g),
		newContentCommand(g),
		newImagesCommand(g),
		newPullCommand(g),
		newLeasesCommand(g),
		newSnapshotsCommand(g),
		newEventsCommand(g),
	)
	return root
}

// connect returns a client of the daemon and a ctx in the namespace of the
// flags. The caller closes the client.
func (g *globals) connect(cmd *cobra.Command) (context.Context, *client.Client, error) {
	ctx := namespaces.WithNamespace(cmd.Context(), g.namespace)
	c, err := client.New(ctx, g.address)
	if err != nil {
		return nil, nil, err
	}
	return ctx, c, nil
}

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

// formatLabels prints labels as k=v,k=v in key order, "-" for none.
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// newTable returns an aligned table writer on cmd's output; Flush it.
func newTable(cmd *cobra.Command) *tabwriter.Writer {
	return tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
}
