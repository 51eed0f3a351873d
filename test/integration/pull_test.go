package integration

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

const (
	// bigLayerSize is the size of the file in the big layer, random bytes
	// in an uncompressed layer: the blob is as large.
	bigLayerSize = 200 << 20
	// proxyRate is the bytes per second the proxy serves a blob at, for a
	// pull to last long enough to be interrupted.
	proxyRate = 40 << 20
)

// bigImage is an image of one ~200 MB uncompressed layer of random bytes.
func bigImage(t *testing.T) imagetest.Built {
	t.Helper()
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], 7)
	data := make([]byte, bigLayerSize)
	rand.NewChaCha8(key).Read(data)
	layer := imagetest.NewLayer(t, image.CompressionNone, imagetest.Entry{Name: "big", Type: tar.TypeReg, Mode: 0o644, Content: data})
	return imagetest.Image{Platform: image.DefaultPlatform(), Layers: []imagetest.Layer{layer}}.Build(t)
}

// blobProxy is a reverse proxy in front of a registry that serves blobs at
// proxyRate and counts the bytes it served and the Range headers it saw,
// by request path.
type blobProxy struct {
	mu     sync.Mutex // guards served and ranges
	served map[string]int64
	ranges map[string][]string
}

// startBlobProxy serves a blobProxy of the registry at host on loopback
// and returns its host:port.
func startBlobProxy(t *testing.T, host string) (string, *blobProxy) {
	t.Helper()
	p := &blobProxy{served: map[string]int64{}, ranges: map[string][]string{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		if rg := r.Header.Get("Range"); rg != "" && strings.Contains(r.URL.Path, "/blobs/") {
			p.mu.Lock()
			p.ranges[r.URL.Path] = append(p.ranges[r.URL.Path], rg)
			p.mu.Unlock()
		}
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if strings.Contains(resp.Request.URL.Path, "/blobs/") {
			resp.Body = &throttledBody{rc: resp.Body, p: p, path: resp.Request.URL.Path, start: time.Now()}
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), p
}

// reset forgets what was counted.
func (p *blobProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served, p.ranges = map[string]int64{}, map[string][]string{}
}

// blob returns the bytes served of the blob path ending in suffix and its
// Range headers.
func (p *blobProxy) blob(suffix string) (int64, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	var ranges []string
	for path, k := range p.served {
		if strings.HasSuffix(path, suffix) {
			n += k
		}
	}
	for path, rs := range p.ranges {
		if strings.HasSuffix(path, suffix) {
			ranges = append(ranges, rs...)
		}
	}
	return n, ranges
}

// throttledBody is a blob body served at proxyRate and counted.
type throttledBody struct {
	rc    io.ReadCloser
	p     *blobProxy
	path  string
	start time.Time
	n     int64
}

func (b *throttledBody) Read(buf []byte) (int, error) {
	if len(buf) > 64<<10 {
		buf = buf[:64<<10]
	}
	n, err := b.rc.Read(buf)
	b.n += int64(n)
	b.p.mu.Lock()
	b.p.served[b.path] += int64(n)
	b.p.mu.Unlock()
	if ahead := time.Duration(float64(b.n)/proxyRate*float64(time.Second)) - time.Since(b.start); ahead > 0 {
		time.Sleep(ahead)
	}
	return n, err
}

func (b *throttledBody) Close() error { return b.rc.Close() }

// waitIngest waits until the ingest ref is past min bytes.
func waitIngest(t *testing.T, d *daemon, ref string, min int64) int64 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if off, _ := activeOffset(t, d, ref); off > min {
			return off
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ingest %s not past %d bytes after a minute\n%s", ref, min, d.ok(nil, "default", "content", "active"))
	return 0
}

// waitReleased waits until no writer holds the ingest ref (a second
// writer is refused with Unavailable while one does), and returns its
// offset then, with the ingest held for the check.
func waitReleased(t *testing.T, d *daemon, ref string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), time.Minute)
	defer cancel()
	c, err := client.New(ctx, d.address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for {
		w, err := c.ContentStore().Writer(ctx, content.WithRef(ref))
		if err == nil {
			defer w.Close()
			st, err := w.Status()
			if err != nil {
				t.Fatal(err)
			}
			return st.Offset
		}
		if !errdefs.IsUnavailable(err) || ctx.Err() != nil {
			t.Fatalf("ingest %s still held after a minute, or: %v", ref, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPull starts `pull ref` as a child and returns it with its stdout.
func startPull(t *testing.T, d *daemon, ref string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(criRuntime, "--address", d.address, "-n", "default", "pull", ref)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

var resumedAt = regexp.MustCompile(`(?m)^layer (\S+): downloading .*\(resumed at ([0-9.]+) (B|kB|MB|GB)\)$`)

// checkResumed pulls ref again and checks that the layer's download
// resumed from a positive offset with a ranged request that served less
// than the layer, and that the image is complete.
func checkResumed(t *testing.T, d *daemon, proxy *blobProxy, ref string, built imagetest.Built) {
	t.Helper()
	layer := built.Blobs[0].Desc
	proxy.reset()
	out := d.ok(nil, "default", "pull", ref)
	t.Logf("second pull:\n%s", out)
	m := resumedAt.FindStringSubmatch(out)
	if m == nil || m[1] != shortDigest(layer.Digest.String()) || m[2] == "0" {
		t.Errorf("second pull does not say the layer resumed from a positive offset:\n%s", out)
	}
	if !strings.Contains(out, "resumed at") || !strings.Contains(out, "pulled "+ref) {
		t.Errorf("summary lacks the resume or the name:\n%s", out)
	}
	served, ranges := proxy.blob(layer.Digest.String())
	if served <= 0 || served >= layer.Size || len(ranges) == 0 {
		t.Errorf("second pull: %d bytes of the %d-byte layer served, ranges %v: want a ranged request for less", served, layer.Size, ranges)
	}
	t.Logf("second pull: %d of %d bytes served, ranges %v", served, layer.Size, ranges)
	if out := d.ok(nil, "default", "images", "check"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ref) + ` .* complete \(2/2\) `).MatchString(out) {
		t.Errorf("images check:\n%s", out)
	}
}

func shortDigest(d string) string {
	alg, enc, _ := strings.Cut(d, ":")
	return alg + ":" + enc[:12]
}

// TestPullResumesAfterDaemonKill9 kills the daemon in the middle of
// pulling a 200 MB layer, restarts it, and pulls again: the layer resumes
// from what the first daemon wrote.
func TestPullResumesAfterDaemonKill9(t *testing.T) {
	host := imagetest.StartRegistry(t)
	built := bigImage(t)
	imagetest.Push(t, host, "test/big", "v1", built)
	phost, proxy := startBlobProxy(t, host)
	ref := phost + "/test/big:v1"
	ingest := "fetch-" + built.Blobs[0].Desc.Digest.String()

	d := newDaemon(t)
	d.start()
	cli, out := startPull(t, d, ref)
	at := waitIngest(t, d, ingest, 20<<20)
	if code := d.signal(syscall.SIGKILL); code != -1 {
		t.Fatalf("kill -9 gave exit code %d", code)
	}
	if err := cli.Wait(); err == nil {
		t.Fatalf("the pull survived the daemon:\n%s", out)
	}
	t.Logf("killed the daemon at %d bytes; the pull said:\n%s", at, out)

	d.start()
	if off, _ := activeOffset(t, d, ingest); off <= 0 {
		t.Fatalf("after restart the ingest is at %d\n%s", off, d.ok(nil, "default", "content", "active"))
	}
	checkResumed(t, d, proxy, ref, built)
	d.stop()
}

// TestPullResumesAfterCLIKilled kills the CLI in the middle of a pull: the
// daemon stays healthy, and the next pull resumes.
func TestPullResumesAfterCLIKilled(t *testing.T) {
	host := imagetest.StartRegistry(t)
	built := bigImage(t)
	imagetest.Push(t, host, "test/big", "v1", built)
	phost, proxy := startBlobProxy(t, host)
	ref := phost + "/test/big:v1"
	ingest := "fetch-" + built.Blobs[0].Desc.Digest.String()

	d := newDaemon(t)
	d.start()
	cli, _ := startPull(t, d, ref)
	waitIngest(t, d, ingest, 20<<20)
	if err := cli.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cli.Wait()
	// The daemon serves on, and the pull it was running stops: it
	// releases the ingest's writer, which a pull holds while it writes.
	d.ok(nil, "default", "namespaces", "ls")
	if off := waitReleased(t, d, ingest); off <= 0 {
		t.Errorf("after the CLI died the ingest stopped at %d: want a positive offset", off)
	}
	checkResumed(t, d, proxy, ref, built)
	if d.hasExited() {
		t.Fatalf("daemon exited: %v", d.err)
	}
	d.stop()
}

func TestPullMissingTagCLI(t *testing.T) {
	host := imagetest.StartRegistry(t)
	d := newDaemon(t)
	d.start()
	ref := host + "/test/none:nope"
	r := d.fails(nil, "default", []string{"pull", ref}, ref, "not found")
	if r.stdout != "" {
		t.Errorf("failed pull printed %q", r.stdout)
	}
	d.stop()
}

// TestSIGTERMDuringPull stops the daemon in the middle of a pull: the
// stop does not wait for the pull, and the daemon exits cleanly.
func TestSIGTERMDuringPull(t *testing.T) {
	host := imagetest.StartRegistry(t)
	built := bigImage(t)
	imagetest.Push(t, host, "test/big", "v1", built)
	phost, _ := startBlobProxy(t, host)
	ref := phost + "/test/big:v1"

	d := newDaemon(t)
	d.start()
	cli, out := startPull(t, d, ref)
	waitIngest(t, d, "fetch-"+built.Blobs[0].Desc.Digest.String(), 10<<20)
	start := time.Now()
	if code := d.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM during a pull", code)
	}
	// A stop that waited for the pull would take the whole shutdown
	// timeout (10 s by default); the margin is for a loaded machine.
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("stop took %v: it waited for the pull", took)
	}
	if err := cli.Wait(); err == nil {
		t.Errorf("the pull succeeded across the stop:\n%s", out)
	}
	if !strings.Contains(out.String(), "the daemon is stopping") {
		t.Errorf("the pull does not say the daemon stopped:\n%s", out)
	}
	t.Logf("the pull said:\n%s\ndaemon:\n%s", out, d.stderr)
}

// TestImagesCheckAndRemoveCLI checks the exit status of `images check` for
// an incomplete image, that a pull restores the missing layer, that
// `images rm a b c` removes every image that exists and reports the
// others, and that `images rm --sync` says what it could not free.
func TestImagesCheckAndRemoveCLI(t *testing.T) {
	host := imagetest.StartRegistry(t)
	layer := imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("hello", "hello\n", 0o644))
	built := imagetest.Image{Platform: image.DefaultPlatform(), Layers: []imagetest.Layer{layer}}.Build(t)
	imagetest.Push(t, host, "test/a", "v1", built)
	imagetest.Push(t, host, "test/b", "v1", built)
	a, b := host+"/test/a:v1", host+"/test/b:v1"
	d := newDaemon(t)
	d.start()
	defer d.stop()
	d.ok(nil, "default", "pull", a)
	d.ok(nil, "default", "pull", b)
	d.ok(nil, "default", "images", "check")

	d.ok(nil, "default", "content", "rm", layer.Desc.Digest.String())
	r := d.fails(nil, "default", []string{"images", "check"}, "2 of 2 images incomplete")
	if !strings.Contains(r.stdout, "incomplete (1/2)") {
		t.Errorf("images check:\n%s", r.stdout)
	}
	d.ok(nil, "default", "pull", a)
	if out := d.ok(nil, "default", "images", "check"); strings.Contains(out, "incomplete") {
		t.Errorf("images check after pulling again:\n%s", out)
	}

	r = d.fails(nil, "default", []string{"images", "rm", "--sync", a, "nothing:1"}, "1 of 2 images not removed", `"nothing:1"`, "not found")
	if !strings.HasPrefix(r.stdout, a+"\n") || !strings.Contains(r.stdout, "still held by image "+b) {
		t.Errorf("images rm --sync printed:\n%s", r.stdout)
	}
	if out := d.ok(nil, "default", "images", "ls", "-q"); out != b+"\n" {
		t.Errorf("images left: %q, want %s", out, b)
	}
}
