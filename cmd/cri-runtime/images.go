package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func newImagesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "images",
		Aliases: []string{"image", "i"},
		Short:   "Manage images",
	}
	cmd.AddCommand(imagesListCommand(g), imagesRemoveCommand(g), imagesCheckCommand(g), &cobra.Command{
		Use:   "label NAME KEY=VALUE...",
		Short: "Set labels of an image; KEY= removes one",
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
			paths, set := labelPaths(labels)
			_, err = c.Images().Update(ctx, meta.Image{Name: args[0], Labels: set}, paths...)
			return err
		},
	})
	return cmd
}

func imagesListCommand(g *globals) *cobra.Command {
	var quiet, unpacked bool
	cmd := &cobra.Command{
		Use:     "ls [FILTER...]",
		Aliases: []string{"list"},
		Short:   "List images matching any of the filters",
		Long: "List images matching any of the filters. SIZE is the compressed content in the content store;\n" +
			"--unpacked adds UNPACKED, the disk usage of the snapshots (slow: walks their files).",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if quiet {
				list, err := c.Images().List(ctx, args...)
				if err != nil {
					return err
				}
				for _, img := range list {
					fmt.Fprintln(cmd.OutOrStdout(), img.Name)
				}
				return nil
			}
			list, err := c.Images().ListUsage(ctx, unpacked, args...)
			if err != nil {
				return err
			}
			return printImages(cmd, list, unpacked)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the names")
	cmd.Flags().BoolVar(&unpacked, "unpacked", false, "also show the disk usage of the unpacked snapshots")
	return cmd
}

// printImages prints the table of `images ls`.
func printImages(cmd *cobra.Command, list []client.ImageUsage, unpacked bool) error {
	tw := newTable(cmd)
	head := "REF\tTYPE\tDIGEST\tSIZE\t"
	if unpacked {
		head += "UNPACKED\t"
	}
	fmt.Fprintln(tw, head+"PLATFORMS\tLABELS")
	for _, img := range list {
		platforms := strings.Join(img.Platforms, ",")
		if platforms == "" {
			platforms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", img.Name, img.Target.MediaType, img.Target.Digest, decimalSize(img.ContentSize))
		if unpacked {
			fmt.Fprintf(tw, "%s\t", decimalSize(img.UnpackedSize))
		}
		fmt.Fprintf(tw, "%s\t%s\n", platforms, formatLabels(img.Labels))
	}
	return tw.Flush()
}

func imagesCheckCommand(g *globals) *cobra.Command {
	var platforms []string
	cmd := &cobra.Command{
		Use:   "check [FILTER...]",
		Short: "Check that the blobs of images matching any of the filters are present",
		Long: "Check, for the daemon's platform (or --platform), that the config and layers of each image are\n" +
			"in the content store. STATUS is \"complete (N/N)\" or \"incomplete (k/N)\", followed by the missing\n" +
			"blobs; SIZE is the bytes present over the bytes required. Exits 1 when an image is incomplete;\n" +
			"pulling it again fetches what is missing.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			checks, err := c.Images().Check(ctx, platforms, args...)
			if err != nil {
				return err
			}
			tw := newTable(cmd)
			fmt.Fprintln(tw, "REF\tTYPE\tDIGEST\tSTATUS\tSIZE")
			incomplete := 0
			for _, ck := range checks {
				status := fmt.Sprintf("complete (%d/%d)", ck.Present, ck.Required)
				if !ck.Complete() {
					status = fmt.Sprintf("incomplete (%d/%d)", ck.Present, ck.Required)
					incomplete++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\n", ck.Image.Name, ck.Image.Target.MediaType, ck.Image.Target.Digest,
					status, decimalSize(ck.PresentSize), decimalSize(ck.RequiredSize))
				for _, m := range ck.Missing {
					fmt.Fprintf(tw, "  missing %s\t%s\t%s\t\t%s\n", blobName(m), m.MediaType, m.Digest, decimalSize(m.Size))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if incomplete > 0 {
				return fmt.Errorf("%d of %d images incomplete", incomplete, len(checks))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&platforms, "platform", nil, "platform os/arch[/variant] to check (repeatable; default: the daemon's)")
	return cmd
}

func imagesRemoveCommand(g *globals) *cobra.Command {
	var sync bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove images; what only they held is garbage collected",
		Long: "Remove each image named, printing its name once removed. A name that cannot be removed is\n" +
			"reported and the others are still removed; the exit status is then 1. With --sync,\n" +
			"what of an image the collection could not free is listed with what holds it: a lease (a failed\n" +
			"pull's keeps its layers for keep_failed_pull, for the next pull to reuse), another image, or\n" +
			"another reference.",
		Args: cobra.MinimumNArgs(1),
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
			var failed []string
			for _, name := range args {
				held, err := c.Images().Remove(ctx, name, opts...)
				if err != nil {
					failed = append(failed, err.Error())
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
				printHeld(cmd, held)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d images not removed: %s", len(failed), len(args), strings.Join(failed, "; "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&sync, "sync", false, "return after garbage collection has removed what only the images held")
	return cmd
}

// printHeld prints what a synchronous remove could not free, by holder.
func printHeld(cmd *cobra.Command, held []meta.Holder) {
	for _, h := range held {
		what := fmt.Sprintf("  not freed: %d blobs / %d snapshots", len(h.Content), len(h.Snapshots))
		switch h.Kind {
		case meta.HolderLease:
			expiry := "never expires"
			if !h.Lease.ExpiresAt.IsZero() {
				expiry = "expires at " + h.Lease.ExpiresAt.Local().Format(time.RFC3339)
			}
			pull := ""
			if ref := h.Lease.Labels[imageservice.LabelPull]; ref != "" {
				pull = ", a pull of " + ref
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s still held by lease %s (%s%s)\n", what, h.ID, expiry, pull)
		case meta.HolderImage:
			fmt.Fprintf(cmd.OutOrStdout(), "%s still held by image %s\n", what, h.ID)
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "%s still held by other references (containers, gc.root labels)\n", what)
		}
	}
}
