package remote_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// multiPlatform is an index over amd64 and arm64 images with gzip, zstd
// and plain layers.
func multiPlatform(t *testing.T, docker bool) imagetest.Built {
	t.Helper()
	var idx imagetest.Index
	idx.Docker = docker
	for i, p := range []ocispec.Platform{amd64, arm64} {
		name := image.FormatPlatform(p)
		layers := []imagetest.Layer{
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.Dir("etc", 0o755), imagetest.File("etc/platform", name, 0o644)),
			imagetest.NewLayer(t, image.CompressionNone, imagetest.File("data", strings.Repeat(name, 1000+i), 0o600)),
		}
		if !docker {
			layers = append(layers, imagetest.NewLayer(t, image.CompressionZstd, imagetest.Symlink("link", "data")))
		}
		idx.Images = append(idx.Images, imagetest.Image{Platform: p, Layers: layers, Docker: docker})
	}
	return idx.Build(t)
}

// fetchAll walks the image from target with the fetcher, checks the digest
// of every blob fetched and returns the store they were put in.
func fetchAll(t *testing.T, ctx context.Context, f *remote.Fetcher, target ocispec.Descriptor) *imagetest.Store {
	t.Helper()
	store := imagetest.NewStore()
	fetch := image.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		rc, err := f.Fetch(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			return nil, err
		}
		if got := digest.FromBytes(data); got != desc.Digest {
			return nil, fmt.Errorf("blob %s: fetched content has digest %s", desc.Digest, got)
		}
		store.Add(imagetest.Blob{Desc: desc, Data: data})
		return nil, nil
	})
	if err := image.Walk(ctx, image.Handlers(fetch, image.ChildrenHandler(store)), target); err != nil {
		t.Fatalf("fetch all: %v", err)
	}
	return store
}

func TestResolveAndFetchMultiPlatform(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	for _, docker := range []bool{false, true} {
		b := multiPlatform(t, docker)
		repo := fmt.Sprintf("test/multi-docker-%v", docker)
		imagetest.Push(t, host, repo, "v1", b)
		r := remote.NewResolver(remote.Options{})

		for _, ref := range []string{
			host + "/" + repo + ":v1",
			host + "/" + repo + "@" + b.Target.Digest.String(),
			host + "/" + repo + ":nonexistent-tag@" + b.Target.Digest.String(), // the digest wins
		} {
			name, desc, err := r.Resolve(ctx, ref)
			if err != nil {
				t.Fatalf("Resolve(%s): %v", ref, err)
			}
			if name != ref {
				t.Errorf("Resolve(%s) name = %s", ref, name)
			}
			if desc.Digest != b.Target.Digest || desc.Size != b.Target.Size || desc.MediaType != b.Target.MediaType {
				t.Errorf("Resolve(%s) = %+v, want %+v", ref, desc, b.Target)
			}
		}

		f, err := r.Fetcher(ctx, host+"/"+repo+":v1")
		if err != nil {
			t.Fatal(err)
		}
		store := fetchAll(t, ctx, f, b.Target)
		for _, bl := range b.Blobs {
			if _, err := store.Info(ctx, bl.Desc.Digest); err != nil {
				t.Errorf("blob %s (%s) was not fetched", bl.Desc.Digest, bl.Desc.MediaType)
			}
		}
		mf, err := image.Manifest(ctx, store, b.Target, image.Only(arm64))
		if err != nil {
			t.Fatal(err)
		}
		want := 3
		if docker {
			want = 2
		}
		if len(mf.Layers) != want {
			t.Errorf("arm64 manifest has %d layers, want %d", len(mf.Layers), want)
		}
	}
}

func TestResolveNotFound(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	b := imagetest.Image{Layers: []imagetest.Layer{imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("a", "a", 0o644))}}.Build(t)
	imagetest.Push(t, host, "test/present", "v1", b)
	r := remote.NewResolver(remote.Options{})

	for _, ref := range []string{
		host + "/test/present:missing",
		host + "/test/absent:v1",
		host + "/test/present@" + digest.FromString("nothing").String(),
	} {
		_, _, err := r.Resolve(ctx, ref)
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "http://"+host+"/v2") {
			t.Errorf("Resolve(%s) = %v, want NotFound naming the endpoint", ref, err)
		}
	}
	f, err := r.Fetcher(ctx, host+"/test/present")
	if err != nil {
		t.Fatal(err)
	}
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("nothing"), Size: 7}
	if _, err := f.Fetch(ctx, missing); !errdefs.IsNotFound(err) {
		t.Errorf("Fetch(missing blob) = %v, want NotFound", err)
	}
	if _, _, err := r.Resolve(ctx, "Not A Reference"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Resolve(bad reference) = %v, want InvalidArgument", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := r.Resolve(cancelled, host+"/test/present:v1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a cancelled ctx = %v, want context.Canceled", err)
	}
}

// proxy is a reverse proxy in front of a registry that records the Range
// header and status of blob requests and can alter them.
type proxy struct {
	srv *httptest.Server

	mu       sync.Mutex // guards the fields below
	ranges   []string
	statuses []int
}

// newProxy forwards to target, under prefix (a path that replaces /v2),
// applying alter to each request.
func newProxy(t *testing.T, target, prefix string, alter func(*http.Request), alterResp func(*http.Response)) *proxy {
	t.Helper()
	p := &proxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: target})
			pr.Out.URL.Path = "/v2" + strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.Host = target
			if strings.Contains(pr.In.URL.Path, "/blobs/") {
				p.mu.Lock()
				p.ranges = append(p.ranges, pr.In.Header.Get("Range"))
				p.mu.Unlock()
			}
			if alter != nil {
				alter(pr.Out)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if strings.Contains(resp.Request.URL.Path, "/blobs/") {
				p.mu.Lock()
				p.statuses = append(p.statuses, resp.StatusCode)
				p.mu.Unlock()
			}
			if alterResp != nil {
				alterResp(resp)
			}
			return nil
		},
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *proxy) seen() ([]string, []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...), append([]int(nil), p.statuses...)
}

// only returns a HostsFunc that sends every host to ep.
func only(ep remote.Endpoint) remote.HostsFunc {
	return func(context.Context, string) ([]remote.Endpoint, error) {
		return []remote.Endpoint{ep}, nil
	}
}

func plainEndpoint(host, path string) remote.Endpoint {
	return remote.Endpoint{Scheme: "http", Host: host, Path: path, Capabilities: remote.CapabilityPull | remote.CapabilityResolve}
}

func bigLayer(t *testing.T) (imagetest.Built, imagetest.Layer) {
	t.Helper()
	var content bytes.Buffer
	for i := 0; content.Len() < 300<<10; i++ {
		fmt.Fprintf(&content, "line %d of a layer big enough to resume\n", i)
	}
	layer := imagetest.NewLayer(t, image.CompressionNone, imagetest.File("big", content.String(), 0o644))
	return imagetest.Image{Layers: []imagetest.Layer{layer}}.Build(t), layer
}

func TestFetchFromOffset(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	b, layer := bigLayer(t)
	imagetest.Push(t, host, "test/big", "v1", b)

	stripRange := func(r *http.Request) { r.Header.Del("Range") }
	for _, tc := range []struct {
		name       string
		alter      func(*http.Request)
		wantStatus int
	}{
		{"registry honours Range", nil, http.StatusPartialContent},
		{"registry ignores Range", stripRange, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, host, "/v2", tc.alter, nil)
			r := remote.NewResolver(remote.Options{Hosts: only(plainEndpoint(p.host(), "/v2"))})
			f, err := r.Fetcher(ctx, host+"/test/big")
			if err != nil {
				t.Fatal(err)
			}
			for _, offset := range []int64{0, 1, 12345, layer.Desc.Size - 1, layer.Desc.Size} {
				rc, err := f.FetchFrom(ctx, layer.Desc, offset)
				if err != nil {
					t.Fatalf("FetchFrom(%d): %v", offset, err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("FetchFrom(%d): read: %v", offset, err)
				}
				if !bytes.Equal(data, layer.Blob[offset:]) {
					t.Errorf("FetchFrom(%d) gave %d bytes, not the blob's last %d", offset, len(data), layer.Desc.Size-offset)
				}
			}
			ranges, statuses := p.seen()
			// offset 0 asks for no range; offset == size asks for nothing.
			want := []string{"", "bytes=1-", "bytes=12345-", fmt.Sprintf("bytes=%d-", layer.Desc.Size-1)}
			if fmt.Sprint(ranges) != fmt.Sprint(want) || len(statuses) != len(want) {
				t.Fatalf("Range headers sent: %q (statuses %v), want %q", ranges, statuses, want)
			}
			for i, s := range statuses[1:] {
				if s != tc.wantStatus {
					t.Errorf("request %d: status %d, want %d", i+1, s, tc.wantStatus)
				}
			}
		})
	}
	r := remote.NewResolver(remote.Options{})
	f, err := r.Fetcher(ctx, host+"/test/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.FetchFrom(ctx, layer.Desc, layer.Desc.Size+1); !errdefs.IsInvalidArgument(err) {
		t.Errorf("FetchFrom past the end = %v, want InvalidArgument", err)
	}
}

func TestFetchChecksSize(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	b, layer := bigLayer(t)
	imagetest.Push(t, host, "test/big", "v1", b)

	short, long := layer.Desc, layer.Desc
	short.Size--
	long.Size++
	// With Content-Length, a mismatch is seen before reading; without it
	// (chunked), while reading.
	dropLength := func(resp *http.Response) {
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	for _, alterResp := range []func(*http.Response){nil, dropLength} {
		p := newProxy(t, host, "/v2", nil, alterResp)
		r := remote.NewResolver(remote.Options{Hosts: only(plainEndpoint(p.host(), "/v2"))})
		f, err := r.Fetcher(ctx, host+"/test/big")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			desc  ocispec.Descriptor
			class func(error) bool
		}{
			{short, errdefs.IsFailedPrecondition},
			{long, func(err error) bool { return errdefs.IsFailedPrecondition(err) || errors.Is(err, io.ErrUnexpectedEOF) }},
		} {
			err := readErr(f.Fetch(ctx, tc.desc))
			if err == nil || !tc.class(err) {
				t.Errorf("fetch with size %d of a %d-byte blob (length header %v): %v", tc.desc.Size, layer.Desc.Size, alterResp == nil, err)
			}
		}
	}
}

func readErr(rc io.ReadCloser, err error) error {
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	return err
}

func TestBasicAuth(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistryWithBasicAuth(t)
	b := multiPlatform(t, false)
	imagetest.Push(t, host, "test/private", "v1", b, imagetest.WithBasicAuth())
	ref := host + "/test/private:v1"

	good := remote.StaticCredentials(host, remote.Credential{Username: imagetest.BasicAuthUsername, Password: imagetest.BasicAuthPassword})
	r := remote.NewResolver(remote.Options{Credentials: good})
	name, desc, err := r.Resolve(ctx, ref)
	if err != nil || desc.Digest != b.Target.Digest {
		t.Fatalf("Resolve with credentials = %+v, %v", desc, err)
	}
	f, err := r.Fetcher(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	fetchAll(t, ctx, f, desc)

	for name, creds := range map[string]remote.Options{
		"wrong password": {Credentials: remote.StaticCredentials(host, remote.Credential{Username: imagetest.BasicAuthUsername, Password: "wrong"})},
		"no credentials": {},
		"other host's":   {Credentials: remote.StaticCredentials("elsewhere.example.com", remote.Credential{Username: imagetest.BasicAuthUsername, Password: imagetest.BasicAuthPassword})},
	} {
		_, _, err := remote.NewResolver(creds).Resolve(ctx, ref)
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s: Resolve = %v, want FailedPrecondition", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestDockerConfigCredentials(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistryWithBasicAuth(t)
	b := imagetest.Image{Layers: []imagetest.Layer{imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("a", "a", 0o644))}}.Build(t)
	imagetest.Push(t, host, "test/private", "v1", b, imagetest.WithBasicAuth())

	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	token := base64.StdEncoding.EncodeToString([]byte(imagetest.BasicAuthUsername + ":" + imagetest.BasicAuthPassword))
	data, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": token}}})
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := remote.DockerConfigCredentials(config)
	if err != nil {
		t.Fatal(err)
	}
	r := remote.NewResolver(remote.Options{Credentials: remote.ChainCredentials(remote.StaticCredentials("other", remote.Credential{}), creds)})
	if _, desc, err := r.Resolve(ctx, host+"/test/private:v1"); err != nil || desc.Digest != b.Target.Digest {
		t.Errorf("Resolve with docker config = %+v, %v", desc, err)
	}

	missing, err := remote.DockerConfigCredentials(filepath.Join(dir, "absent.json"))
	if err != nil {
		t.Fatalf("missing docker config: %v, want no credentials and no error", err)
	}
	if _, _, err := remote.NewResolver(remote.Options{Credentials: missing}).Resolve(ctx, host+"/test/private:v1"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Resolve with no docker credentials = %v, want FailedPrecondition", err)
	}
	if err := os.WriteFile(config, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.DockerConfigCredentials(config); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), config) {
		t.Errorf("corrupt docker config: %v, want InvalidArgument naming the file", err)
	}
}

func TestResolveFallsBackToGet(t *testing.T) {
	ctx := testCtx(t)
	host := imagetest.StartRegistry(t)
	for _, docker := range []bool{false, true} {
		b := multiPlatform(t, docker)
		repo := fmt.Sprintf("test/get-%v", docker)
		imagetest.Push(t, host, repo, "v1", b)
		for name, alterResp := range map[string]func(*http.Response){
			"HEAD refused": func(resp *http.Response) {
				if resp.Request.Method == http.MethodHead {
					resp.StatusCode, resp.Status = http.StatusMethodNotAllowed, "405 Method Not Allowed"
				}
			},
			"no digest header": func(resp *http.Response) { resp.Header.Del("Docker-Content-Digest") },
			"no media type": func(resp *http.Response) {
				resp.Header.Set("Content-Type", "application/octet-stream")
			},
		} {
			p := newProxy(t, host, "/v2", nil, alterResp)
			r := remote.NewResolver(remote.Options{Hosts: only(plainEndpoint(p.host(), "/v2"))})
			for _, ref := range []string{host + "/" + repo + ":v1", host + "/" + repo + "@" + b.Target.Digest.String()} {
				_, desc, err := r.Resolve(ctx, ref)
				if err != nil || desc.Digest != b.Target.Digest || desc.Size != b.Target.Size || desc.MediaType != b.Target.MediaType {
					t.Errorf("%s: Resolve(%s) = %+v, %v; want %+v", name, ref, desc, err, b.Target)
				}
			}
		}
	}
}
