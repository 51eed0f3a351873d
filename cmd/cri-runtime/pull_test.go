package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// cliDaemon is a daemon for the CLI tests, with metrics off and no hosts
// directory.
func cliDaemon(t *testing.T) *servertest.Daemon {
	t.Helper()
	return servertest.Start(t, func(c *server.Config) { c.Metrics.Address = ""; c.Image.ConfigPath = "" })
}

// runCLI runs the command made by mk with args against address, in
// namespace "cli", with stdin, and returns its output.
func runCLI(t *testing.T, address string, mk func(*globals) *cobra.Command, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := mk(&globals{address: address, namespace: "cli"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(namespaces.WithNamespace(context.Background(), "cli"))
	return out.String(), err
}

func pushBusybox(t *testing.T, host, repo string, opts ...imagetest.PushOpt) imagetest.Built {
	t.Helper()
	built := imagetest.Image{
		Platform: image.DefaultPlatform(),
		Layers: []imagetest.Layer{
			imagetest.BusyboxLayer(t, image.CompressionGzip),
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("hello", "hello\n", 0o644)),
		},
	}.Build(t)
	imagetest.Push(t, host, repo, "v1", built, opts...)
	return built
}

func TestPullCommandPlainOutput(t *testing.T) {
	d := cliDaemon(t)
	addr := d.Config.GRPC.Address
	host := imagetest.StartRegistry(t)
	built := pushBusybox(t, host, "test/busybox")
	ref := host + "/test/busybox:v1"

	out, err := runCLI(t, addr, newPullCommand, "", ref)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	t.Logf("pull output:\n%s", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := lines[len(lines)-1]
	sum := regexp.MustCompile(`^pulled ` + regexp.QuoteMeta(ref) + ` \(` + regexp.QuoteMeta(built.Target.Digest.String()) +
		`\) [0-9.]+ (kB|MB) in [0-9.]+ s \([0-9.]+ (B|kB|MB|GB)/s\)$`)
	if !sum.MatchString(last) {
		t.Errorf("summary line %q does not match %s", last, sum)
	}
	// One line per change of state, in order, for each layer.
	for _, l := range built.Blobs[:2] {
		name := blobName(l.Desc)
		var states []string
		for _, line := range lines {
			if rest, ok := strings.CutPrefix(line, name+": "); ok {
				states = append(states, strings.Fields(rest)[0])
			}
		}
		joined := strings.Join(states, " ")
		if !regexp.MustCompile(`^waiting downloading (waiting unpacking )?done$`).MatchString(joined) {
			t.Errorf("layer %s: states %q\n%s", name, joined, out)
		}
	}

	// Again: nothing is fetched, the summary says so (the layers are
	// skipped because their snapshots exist), and --quiet prints only the
	// name.
	out, err = runCLI(t, addr, newPullCommand, "", ref)
	present := fmt.Sprintf(", %d of %d blobs present already", len(built.Blobs), len(built.Blobs))
	if err != nil || !strings.HasSuffix(out, present+"\n") {
		t.Errorf("second pull does not end with %q: %v\n%s", present, err, out)
	}
	out, err = runCLI(t, addr, newPullCommand, "", "--quiet", ref)
	if err != nil || out != ref+"\n" {
		t.Errorf("pull --quiet: %q, %v", out, err)
	}

	out, err = runCLI(t, addr, newImagesCommand, "", "ls")
	want := regexp.MustCompile(`^REF +TYPE +DIGEST +SIZE +PLATFORMS +LABELS\n` + regexp.QuoteMeta(ref) +
		` +application/vnd.oci.image.manifest.v1\+json +` + regexp.QuoteMeta(built.Target.Digest.String()) +
		` +[0-9.]+ (kB|MB) +` + regexp.QuoteMeta(image.FormatPlatform(image.DefaultPlatform())) + ` +-\n$`)
	if err != nil || !want.MatchString(out) {
		t.Errorf("images ls: %v\n%s", err, out)
	}
	if out, err = runCLI(t, addr, newImagesCommand, "", "ls", "-q"); err != nil || out != ref+"\n" {
		t.Errorf("images ls -q: %q, %v", out, err)
	}
	out, err = runCLI(t, addr, newImagesCommand, "", "check")
	t.Logf("images check:\n%s", out)
	if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(ref)+` +\S+ +\S+ +complete \(3/3\) +[0-9.]+ \S+/[0-9.]+ \S+$`).MatchString(out) {
		t.Errorf("images check: %v\n%s", err, out)
	}
	if out, err = runCLI(t, addr, newImagesCommand, "", "rm", "--sync", ref); err != nil || out != ref+"\n" {
		t.Errorf("images rm --sync: %q, %v", out, err)
	}
}

func TestPullCommandMissingTag(t *testing.T) {
	d := cliDaemon(t)
	host := imagetest.StartRegistry(t)
	ref := host + "/test/none:nope"
	_, err := runCLI(t, d.Config.GRPC.Address, newPullCommand, "", ref)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), ref) || strings.Contains(err.Error(), "rpc error") {
		t.Fatalf("pull of a missing tag: %v, want NotFound naming %s", err, ref)
	}
	t.Logf("pull of a missing tag: %v", err)
}

func TestPullCommandCredentials(t *testing.T) {
	d := cliDaemon(t)
	addr := d.Config.GRPC.Address
	host := imagetest.StartRegistryWithBasicAuth(t)
	pushBusybox(t, host, "test/private", imagetest.WithBasicAuth())
	ref := host + "/test/private:v1"
	// No config file, no --user: refused.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if _, err := runCLI(t, addr, newPullCommand, "", "-q", ref); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("anonymous pull from a private registry: %v, want FailedPrecondition", err)
	}
	// --user with the password on stdin.
	if out, err := runCLI(t, addr, newPullCommand, imagetest.BasicAuthPassword+"\n", "-q", "--user", imagetest.BasicAuthUsername, ref); err != nil {
		t.Fatalf("pull --user: %v\n%s", err, out)
	}
	if out, err := runCLI(t, addr, newImagesCommand, "", "rm", "--sync", ref); err != nil {
		t.Fatalf("rm: %v\n%s", err, out)
	}
	// The Docker config file.
	dir := t.TempDir()
	authStr := base64.StdEncoding.EncodeToString([]byte(imagetest.BasicAuthUsername + ":" + imagetest.BasicAuthPassword))
	cfg := `{"auths":{"` + host + `":{"auth":"` + authStr + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	if out, err := runCLI(t, addr, newPullCommand, "", "-q", ref); err != nil || out != ref+"\n" {
		t.Fatalf("pull with a Docker config: %q, %v", out, err)
	}
}

func TestDecimalSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 5_200_000: "5.2 MB", 999_960: "1.0 MB", 3_000_000_000: "3.0 GB"} {
		if got := decimalSize(n); got != want {
			t.Errorf("decimalSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	img := meta.Image{Name: "r/x:1", Target: ocispec.Descriptor{Digest: digest.FromString("m")}}
	d1, d2 := digest.FromString("a"), digest.FromString("b")
	head := "pulled r/x:1 (" + img.Target.Digest.String() + ") "
	for _, c := range []struct {
		sum     client.PullSummary
		resumed resumes
		want    string
	}{
		{client.PullSummary{Image: img, Elapsed: 2 * time.Second, Fetched: 4, FetchedBytes: 4_000_000}, nil,
			head + "4.0 MB in 2.0 s (2.0 MB/s)"},
		{client.PullSummary{Image: img, Elapsed: time.Second, Fetched: 1, FetchedBytes: 1000, Existing: 3}, resumes{{d1, 500}, {d2, 2000}},
			head + "1.0 kB in 1.0 s (1.0 kB/s), 3 of 4 blobs present already, " + shortDigest(d1) + " resumed at 500 B, " + shortDigest(d2) + " resumed at 2.0 kB"},
	} {
		if got := summaryLine(c.sum, time.Minute, c.resumed); got != c.want {
			t.Errorf("summaryLine:\n got %q\nwant %q", got, c.want)
		}
	}
}

// TestPlainDisplayRepeatsProgress checks that plain output (a pipe, a
// log) prints a line of a downloading blob every interval while its
// offset moves, besides one per change of state.
func TestPlainDisplayRepeatsProgress(t *testing.T) {
	var buf bytes.Buffer
	d := newPlainDisplay(&buf)
	d.interval = 50 * time.Millisecond
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("layer"), Size: 100}
	ev := func(st client.BlobState, off int64) {
		d.update(client.PullProgress{Desc: desc, State: st, Offset: off, Total: 100})
	}
	ev(client.BlobWaiting, 0)
	ev(client.BlobDownloading, 0)
	ev(client.BlobDownloading, 10) // within the interval: not printed
	time.Sleep(60 * time.Millisecond)
	ev(client.BlobDownloading, 20) // printed
	time.Sleep(60 * time.Millisecond)
	ev(client.BlobDownloading, 20) // no progress: not printed
	ev(client.BlobDone, 100)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "downloading 20 B / 100 B") {
		t.Errorf("plain output:\n%s\nwant waiting, downloading 0, downloading 20, done", buf.String())
	}
}
