package images

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

var (
	registryFlag = flag.String("registry", "", "push to this registry (host:port, plain HTTP) instead of one of the test's own")
	hostsFlag    = flag.String("hosts-dir", "", "write the hosts.toml files for the registry here")
	busyboxFlag  = flag.String("busybox", "", "the busybox to build on (default: busybox in PATH); "+
		"a dynamic one without FEATURE_SH_STANDALONE, so that sh runs ls from PATH as the busybox image does")
	upstreamFlag = flag.Bool("upstream-fallback", false, "make each upstream registry the hosts.toml server, "+
		"tried after the mirror (default: the mirror is the server too, so nothing leaves the machine)")
)

// TestMirror builds every image of the catalogue, pushes it under each of
// its references, checks that the registry serves it there, and writes the
// hosts.toml files that send a runtime's pulls of those references to the
// registry, checked by the hosts.toml reader of the daemon.
func TestMirror(t *testing.T) {
	reg := *registryFlag
	if reg == "" {
		reg = imagetest.StartRegistry(t)
	}
	stub := buildStub(t)
	busybox := busyboxBinary(t)
	base := baseLayer(t, busybox, stub)
	checkBase(t, base)
	var all []built
	for _, img := range Catalogue() {
		b := buildImage(t, img, base, stub)
		for _, ref := range img.Refs {
			// A mirror is asked for the same repository path as
			// the upstream registry: gcr.io/a/b:t is a/b:t there.
			_, repo, tag := splitRef(ref)
			imagetest.Push(t, reg, repo, tag, b.Blobs)
			checkServed(t, reg, ref, b)
		}
		all = append(all, b)
	}
	checkCatalogue(t, all)

	dir := *hostsFlag
	if dir == "" {
		dir = t.TempDir()
	}
	if err := writeHosts(dir, reg, *upstreamFlag); err != nil {
		t.Fatal(err)
	}
	checkHosts(t, dir, reg)
	t.Logf("pushed %d images to %s (busybox %s); hosts.toml in %s", len(all), reg, busybox, dir)
}

// checkServed fetches the manifest of ref from the registry by its tag and
// checks that it is the one built.
func checkServed(t *testing.T, reg, ref string, b built) {
	t.Helper()
	_, repo, tag := splitRef(ref)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", reg, repo, tag)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{
		ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		image.MediaTypeDockerSchema2ManifestList, image.MediaTypeDockerSchema2Manifest,
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	resp.Body.Close()
	got := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || got != b.Blobs.Target.Digest.String() {
		t.Errorf("%s: HEAD %s = %s, digest %q; want 200, %s", ref, url, resp.Status, got, b.Blobs.Target.Digest)
	}
	if mt := resp.Header.Get("Content-Type"); mt != b.Blobs.Target.MediaType {
		t.Errorf("%s: media type %q, want %q", ref, mt, b.Blobs.Target.MediaType)
	}
}

// checkCatalogue checks the built images against what critest expects of
// them as a set: the references of one entry are one image, and no two
// entries are the same image (critest counts the tags of an image ID).
func checkCatalogue(t *testing.T, all []built) {
	t.Helper()
	seen := map[string]string{}
	for _, b := range all {
		id := b.Config.Digest.String()
		if other, ok := seen[id]; ok {
			t.Errorf("%s and %s are the same image (config %s)", other, b.Refs[0], id)
		}
		seen[id] = b.Refs[0]
	}
	for ref := range Unmirrorable {
		host, _, _ := splitRef(ref)
		if !slices.Contains(Hosts(), host) {
			t.Errorf("unmirrorable %s: host %s has no hosts.toml", ref, host)
		}
	}
	for _, b := range all {
		checkUser(t, b)
	}
	if !slices.ContainsFunc(all, func(b built) bool { return slices.Contains(b.Refs, SandboxImage) }) {
		t.Errorf("the sandbox image %s is not in the catalogue", SandboxImage)
	}
}

// checkUser checks that the USER of an image names a user of its
// /etc/passwd when by name, and for test-image-predefined-group that the
// user's groups in /etc/group are the ones critest expects.
func checkUser(t *testing.T, b built) {
	t.Helper()
	passwd, group := busyboxPasswd, busyboxGroup
	for _, f := range b.Files {
		switch f.Path {
		case "etc/passwd":
			passwd = f.Content
		case "etc/group":
			group = f.Content
		}
	}
	user, _, _ := strings.Cut(b.Image.Config.User, ":")
	if user == "" || !b.Busybox {
		return
	}
	uid, byName := "", false
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && (f[0] == user || f[2] == user) {
			uid, byName = f[2], f[0] == user
		}
	}
	if uid == "" && !isNumber(user) {
		t.Errorf("%s: USER %s is not in its /etc/passwd", b.Refs[0], user)
	}
	if !strings.Contains(b.Refs[0], "predefined-group") {
		return
	}
	var groups []string
	for _, line := range strings.Split(group, "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && slices.Contains(strings.Split(f[3], ","), "default-user") {
			groups = append(groups, f[2])
		}
	}
	if uid != "1000" || byName || !slices.Equal(groups, []string{"50000"}) {
		t.Errorf("%s: user %s is uid %s with groups %v; critest wants uid 1000 in group 50000", b.Refs[0], user, uid, groups)
	}
}

func isNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// checkBase checks that the base layer has every command critest runs in
// the busybox-based images, in /bin, /bin/ls a hard link, and that each hard
// link's header has its file's mode: containerd sets the file's mode from
// a link's header, so a link of mode 0644 makes busybox not executable.
func checkBase(t *testing.T, base imagetest.Layer) {
	t.Helper()
	entries := tarEntries(t, base.Tar)
	for _, c := range critestCommands {
		if _, ok := entries["bin/"+c]; !ok {
			t.Errorf("base layer: no /bin/%s (critest runs it)", c)
		}
	}
	if e := entries["bin/ls"]; e.Typeflag != tar.TypeLink {
		t.Errorf("base layer: /bin/ls is of type %q; critest masks it, so it must be a hard link", e.Typeflag)
	}
	for name, e := range entries {
		if e.Typeflag == tar.TypeLink && e.Mode != entries[e.Linkname].Mode {
			t.Errorf("base layer: hard link %s has mode %o, its file %s %o", name, e.Mode, e.Linkname, entries[e.Linkname].Mode)
		}
	}
}

// writeHosts writes <dir>/<host>/hosts.toml for every host of the
// catalogue and <dir>/_default/hosts.toml (any other host), sending pulls
// and resolves to the mirror at reg. The server is the mirror too, so that
// what the mirror lacks fails at once instead of reaching out of the
// machine; with upstream, it is the registry itself.
func writeHosts(dir, reg string, upstream bool) error {
	mirror := "http://" + reg
	for _, host := range append(Hosts(), "_default") {
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by hack/critest: pulls of %s go to the loopback mirror of critest's images.\n", host)
		switch {
		case upstream && host == "_default":
			b.WriteString("# What the mirror lacks is asked of the registry itself.\n")
		case upstream:
			fmt.Fprintf(&b, "server = %q\n", "https://"+host)
		default:
			b.WriteString("# The server is the mirror too, not the upstream registry: what the mirror\n" +
				"# lacks fails at once instead of reaching out of the machine.\n")
			fmt.Fprintf(&b, "server = %q\n", mirror)
		}
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror)
		if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkHosts reads the hosts.toml files with the daemon's reader and checks
// that the mirror comes first for every host (example.com for any other),
// and is the server as well unless the upstream fallback was asked for.
func checkHosts(t *testing.T, dir, reg string) {
	t.Helper()
	hosts := remote.HostsDir(dir, remote.IsLocalhost)
	for _, host := range append(Hosts(), "example.com") {
		eps, err := hosts(context.Background(), host)
		if err != nil {
			t.Fatalf("hosts of %s: %v", host, err)
		}
		first, last := eps[0], eps[len(eps)-1]
		if first.Scheme != "http" || first.Host != reg || !first.Capabilities.Has(remote.CapabilityPull|remote.CapabilityResolve) {
			t.Errorf("%s: first endpoint %+v, want the mirror http://%s with pull and resolve", host, first, reg)
		}
		wantLast := reg
		if *upstreamFlag {
			wantLast = host
		}
		if last.Host != wantLast {
			t.Errorf("%s: server %s, want %s", host, last, wantLast)
		}
	}
}

// tarEntries maps the names of a tar's entries to their headers.
func tarEntries(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(hdr.Name, "/")] = hdr
	}
}
