package service

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

const testTimeout = 2 * time.Minute

// testEnv is a service over a real database, content store and
// snapshotter, whose registry requests a countingTransport records.
type testEnv struct {
	*metatest.Env
	svc *Service
	rt  *countingTransport
	ctx context.Context
}

func newTestEnv(t testing.TB, snapshotter string, mutate ...func(*Config)) *testEnv {
	t.Helper()
	env := metatest.NewEnv(t)
	if env.Snapshotters[snapshotter] == nil {
		testenv.Missing(t, "snapshotter %q is not available here: %v", snapshotter, env.SnapshotterErrs[snapshotter])
	}
	cfg := DefaultConfig()
	cfg.ConfigPath = ""
	cfg.Snapshotter = snapshotter
	for _, m := range mutate {
		m(&cfg)
	}
	rt := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone(), gets: map[string]int{}}
	svc, err := New(env.DB, cfg, WithHTTPClient(&http.Client{Transport: rt}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "test"), testTimeout)
	t.Cleanup(cancel)
	return &testEnv{Env: env, svc: svc, rt: rt, ctx: ctx}
}

// countingTransport counts the GETs of every registry path and keeps
// their Range headers.
type countingTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex // guards gets and ranges
	gets   map[string]int
	ranges []string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		c.mu.Lock()
		c.gets[req.URL.Path]++
		if r := req.Header.Get("Range"); r != "" {
			c.ranges = append(c.ranges, req.URL.Path+" "+r)
		}
		c.mu.Unlock()
	}
	return c.base.RoundTrip(req)
}

// blobGets returns how many GETs fetched the blob or manifest d.
func (c *countingTransport) blobGets(d ocispec.Descriptor) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for p, k := range c.gets {
		if strings.HasSuffix(p, "/"+d.Digest.String()) {
			n += k
		}
	}
	return n
}

// sampleLayers are three layers that exercise whiteouts (a file, an
// opaque directory), hard links, symlinks, modes and every compression.
func sampleLayers(t *testing.T) [][]imagetest.Entry {
	t.Helper()
	return [][]imagetest.Entry{
		{
			imagetest.Dir("etc", 0o755),
			imagetest.File("etc/hostname", "one\n", 0o644),
			imagetest.File("etc/gone", "deleted by layer 1\n", 0o600),
			imagetest.Dir("opq", 0o750),
			imagetest.File("opq/old", "hidden by the opaque dir\n", 0o644),
			imagetest.Dir("opq/sub", 0o755),
			imagetest.File("opq/sub/deep", "also hidden\n", 0o644),
			imagetest.Dir("data", 0o755),
			imagetest.File("data/orig", strings.Repeat("hard link target\n", 100), 0o640),
			imagetest.Hardlink("data/link", "data/orig"),
			imagetest.Symlink("data/sym", "orig"),
			{Name: "data/suid", Type: tar.TypeReg, Mode: 0o755 | os.ModeSetuid, Content: []byte("#!/bin/sh\n")},
		},
		{
			imagetest.Whiteout("etc/gone"),
			imagetest.File("etc/hostname", "two\n", 0o644),
			imagetest.Opaque("opq"),
			imagetest.File("opq/new", "only this in opq\n", 0o644),
			imagetest.Hardlink("data/link2", "data/orig"),
		},
		{
			imagetest.Dir("usr", 0o755),
			imagetest.Dir("usr/share", 0o755),
			imagetest.File("usr/share/big", strings.Repeat("0123456789abcdef", 64<<10), 0o644),
			imagetest.Whiteout("data/sym"),
		},
	}
}

// buildImage builds one image of entries with the given compressions,
// busybox as its first layer when withBusybox.
func buildImage(t *testing.T, platform ocispec.Platform, layers [][]imagetest.Entry, comps []image.Compression, withBusybox bool) (imagetest.Built, [][]imagetest.Entry) {
	t.Helper()
	img := imagetest.Image{Platform: platform}
	var all [][]imagetest.Entry
	if withBusybox {
		img.Layers = append(img.Layers, imagetest.BusyboxLayer(t, image.CompressionGzip))
		all = append(all, nil) // checked by presence only
	}
	for i, es := range layers {
		img.Layers = append(img.Layers, imagetest.NewLayer(t, comps[i%len(comps)], es...))
		all = append(all, es)
	}
	return img.Build(t), all
}

// node is what a path of an unpacked tree should be.
type node struct {
	typ     byte
	mode    fs.FileMode
	content string
	target  string // of a symlink, or the path a hard link shares its inode with
	// sameInode is false for a hard link whose target a later layer
	// linked again: overlayfs copies the target up, which breaks the
	// older link (the content stays the same).
	sameInode bool
}

// expectedTree applies the layers' entries as a reader of the image
// spec would: whiteouts and opaque directories delete what the layers
// below put there, then the layer's own entries are added.
func expectedTree(layers [][]imagetest.Entry) map[string]node {
	tree := map[string]node{}
	removeUnder := func(p string, self bool) {
		for k := range tree {
			if (self && k == p) || strings.HasPrefix(k, p+"/") {
				delete(tree, k)
			}
		}
	}
	linkedIn := map[string]int{} // target → last layer that hard-linked it
	for li, es := range layers {
		for _, e := range es {
			if e.Type == tar.TypeLink {
				linkedIn[e.Target] = li
			}
		}
	}
	for li, es := range layers {
		for _, e := range es {
			dir, base := path.Split(e.Name)
			switch {
			case base == ".wh..wh..opq":
				removeUnder(strings.TrimSuffix(dir, "/"), false)
			case strings.HasPrefix(base, ".wh."):
				removeUnder(dir+strings.TrimPrefix(base, ".wh."), true)
			}
		}
		for _, e := range es {
			_, base := path.Split(e.Name)
			if strings.HasPrefix(base, ".wh.") {
				continue
			}
			n := node{typ: e.Type, mode: e.Mode, content: string(e.Content), target: e.Target}
			if e.Type == tar.TypeLink {
				t := tree[e.Target]
				n = node{typ: tar.TypeLink, mode: t.mode, content: t.content, target: e.Target, sameInode: linkedIn[e.Target] == li}
			}
			tree[e.Name] = n
		}
	}
	return tree
}

// compareTree checks root against want, byte for byte; paths not in
// want are errors unless ignore says so.
func compareTree(t *testing.T, root string, want map[string]node, ignore func(string) bool) {
	t.Helper()
	got := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if ignore(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		got[rel] = true
		w, ok := want[rel]
		if !ok {
			t.Errorf("%s: in the tree, not in the layers", rel)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		checkNode(t, root, rel, fi, w)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !got[p] && !ignore(p) {
			t.Errorf("%s: in the layers, not in the tree", p)
		}
	}
}

func checkNode(t *testing.T, root, rel string, fi fs.FileInfo, w node) {
	t.Helper()
	p := filepath.Join(root, rel)
	switch w.typ {
	case tar.TypeDir:
		if !fi.IsDir() {
			t.Errorf("%s: %v, want a directory", rel, fi.Mode())
		}
	case tar.TypeSymlink:
		target, err := os.Readlink(p)
		if err != nil || target != w.target {
			t.Errorf("%s: link to %q (%v), want %q", rel, target, err, w.target)
		}
		return
	case tar.TypeReg, tar.TypeLink:
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, []byte(w.content)) {
			t.Errorf("%s: content differs (%d bytes, %v; want %d)", rel, len(b), err, len(w.content))
		}
		if w.typ == tar.TypeLink && w.sameInode {
			ti, err := os.Lstat(filepath.Join(root, w.target))
			if err != nil || ti.Sys().(*syscall.Stat_t).Ino != fi.Sys().(*syscall.Stat_t).Ino {
				t.Errorf("%s: not a hard link of %s (%v)", rel, w.target, err)
			}
		}
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != w.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) {
		t.Errorf("%s: mode %v, want %v", rel, got, w.mode)
	}
}

// viewTop mounts a view of the image's top snapshot and calls fn with it.
func (e *testEnv) viewTop(t *testing.T, img meta.Image, platform ocispec.Platform, fn func(root string)) {
	t.Helper()
	sn := e.DB.Snapshotter(e.svc.Snapshotter())
	top := e.topChain(t, img, platform)
	key := "view-" + t.Name()
	ctx, done, err := meta.WithLease(e.ctx, e.DB.Leases())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := done(e.ctx); err != nil {
			t.Error(err)
		}
	}()
	mounts, err := sn.View(ctx, key, top)
	if err != nil {
		t.Fatalf("view of %s: %v", top, err)
	}
	defer func() {
		if err := sn.Remove(ctx, key); err != nil {
			t.Errorf("remove view: %v", err)
		}
	}()
	if err := mount.WithTempMount(ctx, mounts, func(root string) error { fn(root); return nil }); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) topChain(t *testing.T, img meta.Image, platform ocispec.Platform) string {
	t.Helper()
	cfgDesc, err := image.Config(e.ctx, e.DB.ContentStore(), img.Target, image.Only(platform))
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := image.RootFS(e.ctx, e.DB.ContentStore(), cfgDesc)
	if err != nil {
		t.Fatal(err)
	}
	return image.ChainID(diffIDs).String()
}

// activeSnapshots lists the snapshots left active or as views.
func (e *testEnv) activeSnapshots(t *testing.T) []string {
	t.Helper()
	var keys []string
	err := e.DB.Snapshotter(e.svc.Snapshotter()).Walk(e.ctx, func(_ context.Context, info snapshot.Info) error {
		if info.Kind != snapshot.KindCommitted {
			keys = append(keys, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// noGC is a policy whose collector runs only when asked.
func noGC() meta.Opt {
	p := gc.DefaultPolicy()
	p.MutationThreshold = 0
	p.StartupDelay = gc.Duration(time.Hour)
	return meta.WithGCPolicy(p)
}

func osReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

func gcDuration(d time.Duration) gc.Duration { return gc.Duration(d) }
