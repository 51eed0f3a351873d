package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// Regression: a full disk reached clients as Unknown. It is
// ResourceExhausted, over the wire too, and the daemon serves on; once
// space is freed the same ingest resumes and commits.
func TestFullDiskIsResourceExhausted(t *testing.T) {
	small := testenv.SmallFS(t, 24)
	d := servertest.Start(t, func(cfg *server.Config) {
		cfg.Root = filepath.Join(small, "root")
		cfg.Metrics.Address = ""
	})
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "diskfull"), time.Minute)
	defer cancel()
	// Leave ~6 MiB free: fill the rest with a file we can remove later.
	filler := filepath.Join(small, "filler")
	fillTo(t, small, filler, 6<<20)

	data := make([]byte, 12<<20)
	rand.Read(data)
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	err := content.WriteBlob(ctx, d.Client.ContentStore(), "big", bytes.NewReader(data), desc)
	if !errdefs.IsResourceExhausted(err) {
		t.Fatalf("ingest onto a full disk: %v, want ResourceExhausted", err)
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) || se.GRPCStatus().Code() != codes.ResourceExhausted {
		t.Fatalf("ingest onto a full disk: code %v on the wire, want ResourceExhausted", status.Code(err))
	}
	if _, err := d.Client.Namespaces().List(ctx); err != nil {
		t.Fatalf("daemon after a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := content.WriteBlob(ctx, d.Client.ContentStore(), "big", bytes.NewReader(data), desc); err != nil {
		t.Fatalf("ingest once space is freed: %v", err)
	}
	if err := d.Server.DB().Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// fillTo writes path until the filesystem at dir has about free bytes left.
func fillTo(t *testing.T, dir, path string, free int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - free
	if n <= 0 {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		w := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:w]); err != nil {
			t.Fatal(err)
		}
		n -= w
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A pull onto a full disk is ResourceExhausted too, and the same pull
// completes once space is freed, reusing what it had fetched.
func TestPullOntoFullDiskIsResourceExhausted(t *testing.T) {
	small := testenv.SmallFS(t, 48)
	host := imagetest.StartRegistry(t)
	big := make([]byte, 12<<20)
	rand.Read(big) // incompressible: the blob and the unpacked file are both ~12 MiB
	built := imagetest.Image{Layers: []imagetest.Layer{
		imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("big", string(big), 0o644)),
	}}.Build(t)
	imagetest.Push(t, host, "test/big", "v1", built)
	d, ctx := startForPull(t, func(cfg *server.Config) { cfg.Root = filepath.Join(small, "root") })
	filler := filepath.Join(small, "filler")
	fillTo(t, small, filler, 16<<20) // room for the blob, not for blob and files
	ref := host + "/test/big:v1"
	_, err := d.Client.Pull(ctx, ref)
	if !errdefs.IsResourceExhausted(err) {
		t.Fatalf("pull onto a full disk: %v, want ResourceExhausted", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Pull(ctx, ref); err != nil {
		t.Fatalf("pull once space is freed: %v", err)
	}
	if err := d.Server.DB().Check(ctx); err != nil {
		t.Fatal(err)
	}
}
