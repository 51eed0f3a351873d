package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// busyboxImage is busybox and one more layer, for the host's platform.
func busyboxImage(t *testing.T) imagetest.Built {
	t.Helper()
	return imagetest.Image{
		Platform: image.DefaultPlatform(),
		Layers: []imagetest.Layer{
			imagetest.BusyboxLayer(t, image.CompressionGzip),
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.Dir("app", 0o755), imagetest.File("app/hello", "hello\n", 0o644)),
		},
	}.Build(t)
}

// startForPull starts a daemon for pull tests, with metrics off and no
// hosts directory.
func startForPull(t *testing.T, mutate ...func(*server.Config)) (*servertest.Daemon, context.Context) {
	t.Helper()
	d := servertest.Start(t, append([]func(*server.Config){func(c *server.Config) { c.Metrics.Address = ""; c.Image.ConfigPath = "" }}, mutate...)...)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "pull"), 2*time.Minute)
	t.Cleanup(cancel)
	return d, ctx
}

// dirEntries lists dir, nil if it does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestPullThroughClient(t *testing.T) {
	d, ctx := startForPull(t)
	host := imagetest.StartRegistry(t)
	built := busyboxImage(t)
	imagetest.Push(t, host, "test/busybox", "v1", built)
	ref := host + "/test/busybox:v1"

	var (
		mu     sync.Mutex
		events = map[digest.Digest][]client.BlobState{}
		sum    client.PullSummary
	)
	img, err := d.Client.Pull(ctx, ref,
		client.WithPullProgress(func(p client.PullProgress) {
			mu.Lock()
			defer mu.Unlock()
			if s := events[p.Desc.Digest]; len(s) == 0 || s[len(s)-1] != p.State {
				events[p.Desc.Digest] = append(s, p.State)
			}
		}),
		client.WithPullSummary(func(s client.PullSummary) { sum = s }))
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != ref || img.Target.Digest != built.Target.Digest {
		t.Fatalf("pulled %q → %s, want %s", img.Name, img.Target.Digest, built.Target.Digest)
	}
	if sum.Image.Name != ref || sum.Fetched != len(built.Blobs) || sum.FetchedBytes <= 0 || sum.Unpacked != 2 || sum.Elapsed <= 0 {
		t.Errorf("summary %+v", sum)
	}
	// Every layer goes waiting → downloading → ... → done, in that order.
	for _, l := range built.Blobs[:2] {
		states := events[l.Desc.Digest]
		iw, id, idone := slices.Index(states, client.BlobWaiting), slices.Index(states, client.BlobDownloading), slices.Index(states, client.BlobDone)
		if iw < 0 || id < iw || idone < id || idone != len(states)-1 {
			t.Errorf("layer %s went through %v, want waiting → downloading → done", l.Desc.Digest, states)
		}
	}

	list, err := d.Client.Images().ListUsage(ctx, true)
	if err != nil || len(list) != 1 {
		t.Fatalf("list usage: %v, %v", list, err)
	}
	var blobs int64
	for _, b := range built.Blobs {
		blobs += b.Desc.Size
	}
	u := list[0]
	if u.ContentSize != blobs || u.UnpackedSize <= 0 || !slices.Equal(u.Platforms, []string{image.FormatPlatform(image.DefaultPlatform())}) {
		t.Errorf("usage %+v, want content %d, some unpacked bytes, the host's platform", u, blobs)
	}
	plain, err := d.Client.Images().List(ctx)
	if err != nil || len(plain) != 1 || plain[0].Name != ref {
		t.Errorf("plain list %v, %v", plain, err)
	}

	checks, err := d.Client.Images().Check(ctx, nil)
	if err != nil || len(checks) != 1 || !checks[0].Complete() || checks[0].Required != 3 || checks[0].PresentSize != checks[0].RequiredSize {
		t.Fatalf("check %+v, %v", checks, err)
	}

	// A layer's blob gone: incomplete, naming it.
	layer := built.Blobs[1].Desc
	if err := d.Client.ContentStore().Delete(ctx, layer.Digest); err != nil {
		t.Fatal(err)
	}
	checks, err = d.Client.Images().Check(ctx, nil, "name=="+ref)
	if err != nil || len(checks) != 1 || checks[0].Complete() || checks[0].Present != 2 || len(checks[0].Missing) != 1 || checks[0].Missing[0].Digest != layer.Digest {
		t.Fatalf("check after deleting %s: %+v, %v", layer.Digest, checks, err)
	}
	// The manifest now names a missing blob, which meta.Check reports.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveSyncFreesDisk(t *testing.T) {
	d, ctx := startForPull(t)
	host := imagetest.StartRegistry(t)
	built := busyboxImage(t)
	imagetest.Push(t, host, "test/busybox", "v1", built)
	ref := host + "/test/busybox:v1"
	if _, err := d.Client.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	blobsDir := filepath.Join(d.Config.Root, "content", "blobs", "sha256")
	snapDirs := func() []string {
		var all []string
		for _, sn := range []string{"native", "overlayfs"} {
			all = append(all, dirEntries(t, filepath.Join(d.Config.Root, "snapshots", sn, "snapshots"))...)
		}
		return all
	}
	if n := len(dirEntries(t, blobsDir)); n != len(built.Blobs) {
		t.Fatalf("%d blobs on disk after the pull, want %d", n, len(built.Blobs))
	}
	if n := len(snapDirs()); n != 2 {
		t.Fatalf("%d snapshot directories after the pull, want 2", n)
	}
	// A second name for the same image keeps everything.
	if _, err := d.Client.Images().Create(ctx, img2(ref, built)); err != nil {
		t.Fatal(err)
	}
	if err := d.Client.Images().Delete(ctx, ref, client.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if n := len(dirEntries(t, blobsDir)); n != len(built.Blobs) {
		t.Fatalf("%d blobs on disk with a name left, want %d", n, len(built.Blobs))
	}
	if err := d.Client.Images().Delete(ctx, ref+"-copy", client.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if left := dirEntries(t, blobsDir); len(left) != 0 {
		t.Errorf("blobs left after the last name went: %v", left)
	}
	if left := snapDirs(); len(left) != 0 {
		t.Errorf("snapshot directories left after the last name went: %v", left)
	}
	if _, err := d.Client.Images().Get(ctx, ref); !errdefs.IsNotFound(err) {
		t.Errorf("get after rm: %v", err)
	}
}

// TestPullUnpacksIntoTheDefaultSnapshotter guards that the top-level
// snapshotter is the one images are unpacked into.
func TestPullUnpacksIntoTheDefaultSnapshotter(t *testing.T) {
	d, ctx := startForPull(t, func(c *server.Config) { c.Snapshotter = "native" })
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, host, "test/busybox", "v1", busyboxImage(t))
	if _, err := d.Client.Pull(ctx, host+"/test/busybox:v1"); err != nil {
		t.Fatal(err)
	}
	for _, sn := range []string{"native", "overlayfs"} {
		want := 0
		if sn == "native" {
			want = 2
		}
		if got := len(dirEntries(t, filepath.Join(d.Config.Root, "snapshots", sn, "snapshots"))); got != want {
			t.Errorf("%d snapshot directories in %s after the pull, want %d", got, sn, want)
		}
	}
}

// TestStopWaitsForPulls stops the daemon while a pull waits for a blob
// that the registry never sends: Stop must cancel the pull and return
// only once its goroutines are gone, for none to touch the closed
// database.
func TestStopWaitsForPulls(t *testing.T) {
	d, ctx := startForPull(t)
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, host, "test/busybox", "v1", busyboxImage(t))
	phost, hung := hangingBlobs(t, host)
	pulled := make(chan error, 1)
	go func() {
		_, err := d.Client.Pull(ctx, phost+"/test/busybox:v1")
		pulled <- err
	}()
	select {
	case <-hung:
	case err := <-pulled:
		t.Fatalf("pull ended before a blob hung: %v", err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	// A flight's goroutine marks itself done as its last act: it may
	// still be returning when Stop does. One that is not gone a few
	// milliseconds later is a goroutine Stop did not wait for.
	g := pullGoroutines()
	for i := 0; i < 20 && len(g) > 0; i++ {
		time.Sleep(time.Millisecond)
		g = pullGoroutines()
	}
	if len(g) > 0 {
		t.Fatalf("goroutines of the pull left after Stop:\n%s", strings.Join(g, "\n\n"))
	}
	if err := <-pulled; !errdefs.IsUnavailable(err) {
		t.Errorf("pull cut by the stop: %v, want Unavailable", err)
	}
}

// hangingBlobs proxies the registry at host, except that a GET of a blob
// hangs until the client goes away; hung is sent to (without blocking)
// when one does.
func hangingBlobs(t *testing.T, host string) (string, <-chan struct{}) {
	t.Helper()
	hung := make(chan struct{}, 1)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			select {
			case hung <- struct{}{}:
			default:
			}
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), hung
}

// pullGoroutines returns the stacks of the goroutines running a pull in
// the image service.
func pullGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "image/service.(*Service).pull(") || strings.Contains(g, "image/service.(*Service).Pull.func") || strings.Contains(g, "image/service.(*puller).") {
			found = append(found, g)
		}
	}
	return found
}

func TestPullMissingTagIsNotFound(t *testing.T) {
	d, ctx := startForPull(t)
	host := imagetest.StartRegistry(t)
	_, err := d.Client.Pull(ctx, host+"/test/nothing:nope")
	if !errdefs.IsNotFound(err) {
		t.Fatalf("pull of a missing tag: %v, want NotFound", err)
	}
	_, err = d.Client.Pull(ctx, host+"/test/nothing:v1", client.WithPlatform("nope/x/y/z"))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("pull with a bad platform: %v, want InvalidArgument", err)
	}
}

// img2 is a second name for the image of built.
func img2(ref string, built imagetest.Built) meta.Image {
	target := built.Target
	target.Platform = nil
	return meta.Image{Name: ref + "-copy", Target: target}
}

// TestListUsageOfManyImages guards that `images ls` stays usable with
// 1,000 images: usage walks each image's tree, plain List does not.
func TestListUsageOfManyImages(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,000 images")
	}
	d, ctx := startForPull(t)
	host := imagetest.StartRegistry(t)
	built := busyboxImage(t)
	imagetest.Push(t, host, "test/busybox", "v1", built)
	img, err := d.Client.Pull(ctx, host+"/test/busybox:v1")
	if err != nil {
		t.Fatal(err)
	}
	// 999 more images, each its own manifest over the same blobs, written
	// under a lease that the image records then replace.
	l, err := d.Client.Leases().Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	var mf ocispec.Manifest
	if err := json.Unmarshal(built.Blob(t, built.Target.Digest), &mf); err != nil {
		t.Fatal(err)
	}
	for i := range 999 {
		mf.Annotations = map[string]string{"copy": strconv.Itoa(i)}
		b, err := json.Marshal(mf)
		if err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: img.Target.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		labels := image.ChildrenLabels(append([]ocispec.Descriptor{mf.Config}, mf.Layers...))
		if err := content.WriteBlob(lctx, d.Client.ContentStore(), "copy-"+strconv.Itoa(i), bytes.NewReader(b), desc, content.WithLabels(labels)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client.Images().Create(ctx, meta.Image{Name: host + "/test/busybox:copy" + strconv.Itoa(i), Target: desc}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Client.Leases().Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	list, err := d.Client.Images().List(ctx)
	plain := time.Since(start)
	if err != nil || len(list) != 1000 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	start = time.Now()
	usage, err := d.Client.Images().ListUsage(ctx, false)
	withUsage := time.Since(start)
	if err != nil || len(usage) != 1000 || usage[999].ContentSize <= 0 {
		t.Fatalf("list usage: %d, %v", len(usage), err)
	}
	t.Logf("1,000 images: list %v, list with usage %v", plain, withUsage)
	if withUsage > 10*time.Second {
		t.Errorf("list with usage of 1,000 images took %v", withUsage)
	}
}
