package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func newContentCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "content",
		Short: "Manage blobs and ingests in the content store",
	}
	cmd.AddCommand(
		contentListCommand(g),
		contentGetCommand(g),
		contentIngestCommand(g),
		contentActiveCommand(g),
		contentRemoveCommand(g),
		contentLabelCommand(g),
	)
	return cmd
}

func contentListCommand(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List blobs matching any of the filters",
		Long: "List blobs matching any of the filters: digest (cut to 12 hex digits; -q and -o json give it\n" +
			"in full), size, creation time and labels (the garbage collector's references counted).",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var list []content.Info
			err = c.ContentStore().Walk(ctx, func(info content.Info) error {
				list = append(list, info)
				return nil
			}, args...)
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, info := range list {
					fmt.Fprintln(cmd.OutOrStdout(), info.Digest)
				}
				return nil
			case g.json():
				return writeJSON(cmd.OutOrStdout(), nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "DIGEST\tSIZE\tCREATED\tLABELS")
			for _, info := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", formatDigest(info.Digest), formatSize(info.Size), info.CreatedAt.Format(time.RFC3339), formatLabels(info.Labels))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the digests, in full")
	return cmd
}

func contentGetCommand(g *globals) *cobra.Command {
	return markStreaming(&cobra.Command{
		Use:   "get DIGEST",
		Short: "Write a blob to stdout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ra, err := c.ContentStore().ReaderAt(ctx, ocispec.Descriptor{Digest: d})
			if err != nil {
				return err
			}
			defer ra.Close()
			_, err = io.Copy(cmd.OutOrStdout(), io.NewSectionReader(ra, 0, ra.Size()))
			return err
		},
	})
}

// ingestFlags are the options of `content ingest`.
type ingestFlags struct {
	ref            string
	expectedSize   int64
	expectedDigest string
	labels         []string // KEY=VALUE, set on the blob
}

func contentIngestCommand(g *globals) *cobra.Command {
	var f ingestFlags
	cmd := &cobra.Command{
		Use:   "ingest --ref REF",
		Short: "Write stdin into a blob and print its digest",
		Long: "Write stdin into a blob under the ingest REF and print its digest. If REF already\n" +
			"holds data (an interrupted ingest), that many bytes of stdin are skipped and the ingest\n" +
			"resumes. A blob that fails verification is discarded.\n\n" +
			"A blob that nothing references is removed by the next garbage collection. Keep it with\n" +
			"--lease ID (a lease from leases create), or with --label " + meta.LabelGCRoot + "=REASON\n" +
			"until it is removed by hand; without either, a warning says so on stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.expectedSize < 0 {
				return fmt.Errorf("--expected-size %d: must not be negative: %w", f.expectedSize, errdefs.ErrInvalidArgument)
			}
			labels, err := parseLabels(f.labels)
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := ingest(ctx, c.ContentStore(), cmd.InOrStdin(), f)
			if err != nil {
				return err
			}
			if _, root := labels[meta.LabelGCRoot]; g.lease == "" && !root {
				fmt.Fprintf(cmd.ErrOrStderr(), "cri-runtime: warning: the next garbage collection removes blob %s unless something "+
					"references it (keep it with --lease ID or --label %s=REASON)\n", d, meta.LabelGCRoot)
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.ref, "ref", "", "name of the ingest (required)")
	cmd.Flags().Int64Var(&f.expectedSize, "expected-size", 0, "expected size in bytes (0: not checked)")
	cmd.Flags().StringVar(&f.expectedDigest, "expected-digest", "", "expected digest (empty: not checked)")
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "KEY=VALUE label of the blob, repeatable ("+meta.LabelGCRoot+"=REASON keeps it from garbage collection)")
	_ = cmd.MarkFlagRequired("ref")
	return markStreaming(cmd)
}

// ingest writes r into the ingest f.ref, resuming it, and commits it.
func ingest(ctx context.Context, cs content.Store, r io.Reader, f ingestFlags) (digest.Digest, error) {
	labels, err := parseLabels(f.labels)
	if err != nil {
		return "", err
	}
	desc := ocispec.Descriptor{Size: f.expectedSize}
	if f.expectedDigest != "" {
		d, err := parseDigest(f.expectedDigest)
		if err != nil {
			return "", err
		}
		desc.Digest = d
	}
	w, err := cs.Writer(ctx, content.WithRef(f.ref), content.WithDescriptor(desc))
	if errdefs.IsAlreadyExists(err) && desc.Digest != "" {
		return desc.Digest, nil // already committed: nothing to do
	}
	if err != nil {
		return "", err
	}
	defer w.Close()
	st, err := w.Status()
	if err != nil {
		return "", err
	}
	if st.Offset > 0 {
		if _, err := io.CopyN(io.Discard, r, st.Offset); err != nil {
			return "", fmt.Errorf("ingest %q: skip the %d bytes already written: %w", f.ref, st.Offset, err)
		}
	}
	if _, err := io.CopyBuffer(w, r, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("ingest %q: %w", f.ref, err)
	}
	err = w.Commit(ctx, f.expectedSize, desc.Digest, content.WithLabels(labels))
	switch {
	case errdefs.IsAlreadyExists(err):
		return w.Digest(), nil
	case errdefs.IsFailedPrecondition(err):
		// The data does not match what was expected: keep nothing of it.
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if aerr := cs.Abort(abortCtx, f.ref); aerr != nil && !errdefs.IsNotFound(aerr) {
			return "", errors.Join(err, aerr)
		}
		return "", err
	case err != nil:
		return "", err
	}
	return w.Digest(), nil
}

func contentActiveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "active [FILTER...]",
		Short: "List ingests in progress matching any of the filters",
		Long: "List ingests in progress matching any of the filters: ref, bytes written (SIZE), expected\n" +
			"size (TOTAL, - when unknown), start and last write. -o json gives the sizes in bytes.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			list, err := c.ContentStore().ListStatuses(ctx, args...)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(list))
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "REF\tSIZE\tTOTAL\tSTARTED\tUPDATED")
			for _, st := range list {
				total := "-"
				if st.Total > 0 {
					total = formatSize(st.Total)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Ref, formatSize(st.Offset), total, st.StartedAt.Format(time.RFC3339), st.UpdatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

func contentRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm DIGEST...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove blobs",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, a := range args {
				d, err := parseDigest(a)
				if err != nil {
					return err
				}
				if err := c.ContentStore().Delete(ctx, d); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), d)
			}
			return nil
		},
	}
}

func contentLabelCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "label DIGEST KEY=VALUE...",
		Short: "Set labels of a blob; KEY= removes one",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDigest(args[0])
			if err != nil {
				return err
			}
			labels, err := parseLabels(args[1:])
			if err != nil {
				return err
			}
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			paths, set := labelPaths(labels)
			_, err = c.ContentStore().Update(ctx, content.Info{Digest: d, Labels: set}, paths...)
			return err
		},
	}
}

// parseDigest validates a digest argument.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}
