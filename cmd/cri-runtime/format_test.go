package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0:                 "0 B",
		1023:              "1023 B",
		1024:              "1.0 KiB",
		1536:              "1.5 KiB",
		1<<20 - 1:         "1.0 MiB",
		5 << 20:           "5.0 MiB",
		177_700_000:       "169.5 MiB",
		3<<30 + 512<<20:   "3.5 GiB",
		1 << 62:           "4.0 EiB",
		(1<<10 - 1) << 50: "1023.0 PiB",
		-2048:             "-2.0 KiB",
	} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatRate(1.5 * (1 << 20)); got != "1.5 MiB/s" {
		t.Errorf("formatRate = %q", got)
	}
}

func TestFormatDigestAndMediaType(t *testing.T) {
	d := digest.FromString("x")
	if got := formatDigest(d); got != "sha256:"+d.Encoded()[:12] {
		t.Errorf("formatDigest = %q", got)
	}
	for mt, want := range map[string]string{
		ocispec.MediaTypeImageIndex:                                 "oci-index",
		"application/vnd.docker.distribution.manifest.list.v2+json": "docker-list",
		"":                      "-",
		"application/x-unknown": "application/x-unknown",
	} {
		if got := formatMediaType(mt); got != want {
			t.Errorf("formatMediaType(%q) = %q, want %q", mt, got, want)
		}
	}
}

// TestFormatLabelsIsNarrow guards the LABELS column against the full GC
// references of an image config, which made tables ~250 columns wide.
func TestFormatLabelsIsNarrow(t *testing.T) {
	labels := map[string]string{"team": "storage"}
	for i := range 12 {
		labels[fmt.Sprintf("cri-runtime.io/gc.ref.content.l.%d", i)] = digest.FromString(fmt.Sprint(i)).String()
	}
	if got := formatLabels(labels); got != "team=storage,12 gc refs" {
		t.Errorf("formatLabels = %q", got)
	}
	for i := range 10 {
		labels[fmt.Sprintf("owner-%d", i)] = strings.Repeat("x", 20)
	}
	got := formatLabels(labels)
	if len(got) > maxLabelsWidth+12 || !strings.HasSuffix(got, "more") {
		t.Errorf("formatLabels of many labels = %q (%d bytes)", got, len(got))
	}
	if got := formatLabels(nil); got != "-" {
		t.Errorf("formatLabels(nil) = %q", got)
	}
}

// TestFilterHelp guards the rule that every command taking filters
// describes the filter language and its fields in its help.
func TestFilterHelp(t *testing.T) {
	n := 0
	root, _ := newRoot()
	walkCommands(root, func(cmd *cobra.Command) {
		if !strings.Contains(cmd.Use, "FILTER") {
			return
		}
		n++
		if !strings.Contains(cmd.Long, "FIELD~=REGEXP") || !strings.Contains(cmd.Long, "\nFields: ") {
			t.Errorf("%s: help does not describe the filters:\n%s", cmd.CommandPath(), cmd.Long)
		}
	})
	if n < 7 {
		t.Fatalf("only %d commands take filters", n)
	}
}
