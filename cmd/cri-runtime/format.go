package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// How the CLI shows things, the same in every command: sizes in IEC units
// with one decimal, digests cut to 12 hex digits, short media types,
// labels summarised. Tables stay narrow; `-o json` prints everything in
// full, and `-q` prints full names or digests, one a line.

// formatSize formats n bytes in IEC units with one decimal: "512 B",
// "4.0 KiB", "177.7 MiB". It is the one unit convention of the CLI.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/unit, 0
	for (v >= 1023.95 || v <= -1023.95) && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// formatRate formats a rate in bytes per second: "12.5 MiB/s".
func formatRate(bytesPerSecond float64) string {
	return formatSize(int64(bytesPerSecond)) + "/s"
}

// formatDigest is d with its encoded part cut to 12 characters.
func formatDigest(d digest.Digest) string {
	if enc := d.Encoded(); len(enc) > 12 {
		return d.Algorithm().String() + ":" + enc[:12]
	}
	return d.String()
}

// mediaTypes are the short names of the media types a table shows.
var mediaTypes = map[string]string{
	ocispec.MediaTypeImageIndex:                                 "oci-index",
	ocispec.MediaTypeImageManifest:                              "oci-manifest",
	ocispec.MediaTypeImageConfig:                                "oci-config",
	ocispec.MediaTypeImageLayer:                                 "oci-layer",
	ocispec.MediaTypeImageLayerGzip:                             "oci-layer+gzip",
	ocispec.MediaTypeImageLayerZstd:                             "oci-layer+zstd",
	"application/vnd.docker.distribution.manifest.list.v2+json": "docker-list",
	"application/vnd.docker.distribution.manifest.v2+json":      "docker-manifest",
	"application/vnd.docker.container.image.v1+json":            "docker-config",
	"application/vnd.docker.image.rootfs.diff.tar.gzip":         "docker-layer+gzip",
	"application/vnd.docker.image.rootfs.diff.tar":              "docker-layer",
}

// formatMediaType is the short name of a media type, the type itself when
// it has none, "-" when empty.
func formatMediaType(mt string) string {
	if short, ok := mediaTypes[mt]; ok {
		return short
	}
	if mt == "" {
		return "-"
	}
	return mt
}

// gcLabelPrefix starts the labels by which the garbage collector follows
// references ("cri-runtime.io/gc.ref.content.l.0", ...): a table counts
// them rather than show them.
const gcLabelPrefix = "cri-runtime.io/gc.ref."

// maxLabelsWidth bounds the LABELS column of a table.
const maxLabelsWidth = 60

// formatLabels summarises labels for a table, "-" for none: key=value in
// key order, the garbage collector's references counted ("3 gc refs"),
// and the whole cut to maxLabelsWidth with the number of labels left out.
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(labels))
	refs := 0
	for k, v := range labels {
		if strings.HasPrefix(k, gcLabelPrefix) {
			refs++
			continue
		}
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	switch refs {
	case 0:
	case 1:
		kv = append(kv, "1 gc ref")
	default:
		kv = append(kv, fmt.Sprintf("%d gc refs", refs))
	}
	out := ""
	for i, s := range kv {
		next := s
		if i > 0 {
			next = out + "," + s
		}
		if len(next) > maxLabelsWidth && i > 0 {
			return fmt.Sprintf("%s,+%d more", out, len(kv)-i)
		}
		out = next
	}
	return out
}

// Output formats of the list commands (-o).
const (
	outputTable = "table"
	outputJSON  = "json"
)

// checkOutput validates the --output flag.
func checkOutput(output string) error {
	switch output {
	case outputTable, outputJSON:
		return nil
	}
	return fmt.Errorf("--output %q: want %q or %q: %w", output, outputTable, outputJSON, errdefs.ErrInvalidArgument)
}

// writeJSON prints v as indented JSON: the -o json form of a list.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nonNil returns list, or an empty list for nil, so that -o json prints
// [] rather than null.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// filterHelp describes the filter language, for every command that takes
// filters; filterFields lists, by command path, the fields of each.
const filterHelp = `
Filters: an object is listed when it matches any FILTER (all objects without one). A FILTER
is conditions joined by ',' that must all hold, each one of:
  FIELD          the field is present
  FIELD==VALUE   equal
  FIELD!=VALUE   different, or absent
  FIELD~=REGEXP  matches the regular expression (Go syntax)
A label is the field labels.KEY; quote a key with dots: labels."team.io/owner"==alice.
VALUE is bare (no spaces, commas or quotes), "double-quoted" with Go escapes, or, for a
regular expression, |raw| or /raw/ in which only the delimiter needs a backslash.
Quote filters for the shell: 'name~=^docker.io/' 'labels."tier"==gold,size'`

var filterFields = map[string]string{
	"content ls":     "digest, size, labels.KEY",
	"content active": "ref, expected, total",
	"images ls":      "name, target.digest, target.mediatype, target.size, labels.KEY",
	"images check":   "name, target.digest, target.mediatype, target.size, labels.KEY",
	"leases ls":      "id, labels.KEY",
	"snapshots ls":   "kind, name, parent, labels.KEY",
	"containers ls":  "id, image, runtime.name, snapshotter, snapshotkey, sandboxid, labels.KEY",
	"events":         "topic, namespace, event.FIELD (a field of the event's payload)",
}

// addFilterHelp appends filterHelp, and the fields of the command, to the
// long help of every command under root whose arguments are FILTERs.
func addFilterHelp(root *cobra.Command) {
	walkCommands(root, func(cmd *cobra.Command) {
		if !strings.Contains(cmd.Use, "FILTER") {
			return
		}
		long := cmd.Long
		if long == "" {
			long = cmd.Short + "."
		}
		long += "\n" + filterHelp
		path := strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")
		if fields := filterFields[path]; fields != "" {
			long += "\nFields: " + fields + "."
		}
		cmd.Long = long
	})
}

// walkCommands calls fn for cmd and every command under it.
func walkCommands(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walkCommands(c, fn)
	}
}
