package remote_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

// writeHosts writes <dir>/<host>/hosts.toml.
func writeHosts(t *testing.T, dir, host, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMirror(t *testing.T) {
	ctx := testCtx(t)
	server := imagetest.StartRegistry(t)
	mirror := imagetest.StartRegistry(t)
	onMirror := multiPlatform(t, false)
	imagetest.Push(t, mirror, "test/app", "v1", onMirror)
	onServer := imagetest.Image{Layers: []imagetest.Layer{imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("only", "server", 0o644))}}.Build(t)
	imagetest.Push(t, server, "test/app", "v2", onServer)

	// The mirror also serves under a path prefix, through a proxy.
	prefixed := newProxy(t, mirror, "/mirror/api", nil, nil)

	for _, tc := range []struct {
		name, mirrorHost, hosts string
	}{
		{"mirror first", mirror, fmt.Sprintf(`server = "http://%s"
[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, server, mirror)},
		{"mirror with override_path", prefixed.host(), fmt.Sprintf(`server = "http://%s"
[host."http://%s/mirror/api"]
  capabilities = ["pull", "resolve"]
  override_path = true
`, server, prefixed.host())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHosts(t, dir, server, tc.hosts)
			r := remote.NewResolver(remote.Options{ConfigPath: dir})

			// v1 is on the mirror only: resolved and fetched there.
			name, desc, err := r.Resolve(ctx, server+"/test/app:v1")
			if err != nil || desc.Digest != onMirror.Target.Digest {
				t.Fatalf("Resolve(v1) = %+v, %v; want the mirror's index", desc, err)
			}
			if name != server+"/test/app:v1" {
				t.Errorf("Resolve(v1) name = %q, want the server's name", name)
			}
			f, err := r.Fetcher(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			fetchAll(t, ctx, f, desc)

			// v2 is on the server only: the mirror's 404 falls through.
			_, desc, err = r.Resolve(ctx, server+"/test/app:v2")
			if err != nil || desc.Digest != onServer.Target.Digest {
				t.Fatalf("Resolve(v2) = %+v, %v; want the server's manifest", desc, err)
			}
			fetchAll(t, ctx, f, desc)

			// Nowhere: NotFound naming both endpoints.
			_, _, err = r.Resolve(ctx, server+"/test/app:v3")
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), server) || !strings.Contains(err.Error(), tc.mirrorHost) {
				t.Errorf("Resolve(v3) = %v, want NotFound naming both endpoints", err)
			}
		})
	}
}

func TestMirrorCapabilities(t *testing.T) {
	ctx := testCtx(t)
	server := imagetest.StartRegistry(t)
	mirror := imagetest.StartRegistry(t)
	b := multiPlatform(t, false)
	imagetest.Push(t, mirror, "test/app", "v1", b)

	// A pull-only mirror is not asked to resolve tags: the server has no
	// v1, so the tag does not resolve...
	dir := t.TempDir()
	writeHosts(t, dir, server, fmt.Sprintf(`server = "http://%s"
[host."http://%s"]
  capabilities = ["pull"]
`, server, mirror))
	r := remote.NewResolver(remote.Options{ConfigPath: dir})
	_, _, err := r.Resolve(ctx, server+"/test/app:v1")
	if !errdefs.IsNotFound(err) || strings.Contains(err.Error(), mirror) {
		t.Errorf("Resolve through a pull-only mirror = %v, want NotFound from the server alone", err)
	}
	// ...but blobs by digest come from it.
	f, err := r.Fetcher(ctx, server+"/test/app")
	if err != nil {
		t.Fatal(err)
	}
	fetchAll(t, ctx, f, b.Target)

	// A server that may not resolve leaves no endpoint to resolve with.
	writeHosts(t, dir, server, fmt.Sprintf(`server = "http://%s"
capabilities = ["pull"]
`, server))
	if _, _, err := r.Resolve(ctx, server+"/test/app:v1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Resolve with no resolve endpoint = %v, want FailedPrecondition", err)
	}
	// A mirror that is down: its error is reported, the server is tried.
	writeHosts(t, dir, server, fmt.Sprintf(`server = "http://%s"
[host."http://127.0.0.1:1"]
`, mirror))
	if _, desc, err := r.Resolve(ctx, server+"/test/app:v1"); err != nil || desc.Digest != b.Target.Digest {
		t.Errorf("Resolve past a dead mirror = %+v, %v", desc, err)
	}
	writeHosts(t, dir, server, `server = "http://127.0.0.1:1"`)
	if _, _, err := r.Resolve(ctx, server+"/test/app:v1"); !errdefs.IsUnavailable(err) {
		t.Errorf("Resolve on a dead server = %v, want Unavailable", err)
	}
}
