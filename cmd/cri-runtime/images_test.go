package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// TestImagesRemoveSyncSaysWhatIsHeld holds an image's manifest in a lease
// labelled as a pull's (what a failed pull leaves): `images rm --sync`
// must say that the lease holds the image's blobs and snapshots, and until
// when.
func TestImagesRemoveSyncSaysWhatIsHeld(t *testing.T) {
	d := cliDaemon(t)
	addr := d.Config.GRPC.Address
	host := imagetest.StartRegistry(t)
	built := pushBusybox(t, host, "test/held")
	ref := host + "/test/held:v1"
	if out, err := runCLI(t, addr, newPullCommand, "", "--quiet", ref); err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	ctx := namespaces.WithNamespace(context.Background(), "cli")
	l, err := d.Client.Leases().Create(ctx, client.WithLeaseID("failed-pull"), client.WithExpiration(time.Hour),
		client.WithLeaseLabels(map[string]string{imageservice.LabelPull: ref}))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Client.Leases().AddResource(ctx, l, meta.Resource{Type: meta.ResourceContent, ID: built.Target.Digest.String()}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, addr, newImagesCommand, "", "rm", "--sync", ref)
	t.Logf("images rm --sync:\n%s", out)
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(ref) + `\n  not freed: 4 blobs / 2 snapshots still held by lease failed-pull ` +
		`\(expires at \S+, a pull of ` + regexp.QuoteMeta(ref) + `\)\n$`)
	if err != nil || !want.MatchString(out) {
		t.Errorf("images rm --sync: %v, output does not match %s", err, want)
	}
}
