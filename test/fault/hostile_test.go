package fault

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"

	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// maxRSSGrowth bounds what one hostile image may add to the daemon's
// resident memory: a bomb or an endless body must not be held in memory.
const maxRSSGrowth = 128 << 20

// up climbs from any directory of the daemon's root to "/".
var up = strings.Repeat("../", 24)

// hostileCase is one malicious image: how to publish it, and what its
// pull through the CRI must give. codes.OK is a pull that must succeed
// (what the image asks stays inside its snapshot); the image is then
// removed.
type hostileCase struct {
	name  string
	ref   func(t *testing.T, h *hostileNode) string
	code  codes.Code
	want  string // in the error
	orOK  bool   // the pull may also succeed (the snapshotter decides)
	quick bool   // refused within a few seconds, not at a deadline
}

// TestHostileImages pulls malicious images from a registry on loopback
// through the CRI's PullImage, as kubelet does. Each is refused with its
// class, or taken without anything leaving its snapshot; after each the
// host is untouched (a sentinel file and directory outside the daemon's
// root, and a path under /tmp that must never exist), the same daemon
// still serves with its memory bounded, and once the collector ran
// nothing of the image is left: no lease, ingest, blob, snapshot, image
// record or mount.
func TestHostileImages(t *testing.T) {
	h := newHostileNode(t)
	for _, c := range hostilePulls() {
		t.Run(c.name, func(t *testing.T) {
			before, rss := h.state(t), h.rss(t)
			ref := c.ref(t, h)
			start := time.Now()
			err := h.pull(ref)
			took := time.Since(start)
			h.intact(t)
			switch {
			case err == nil && (c.code == codes.OK || c.orOK):
				h.removeImage(t, ref)
			case c.code == codes.OK:
				t.Fatalf("pull: %v", err)
			default:
				wantCode(t, "pull", err, c.code, c.want)
			}
			if c.quick && took > 10*time.Second {
				t.Errorf("refused after %v", took)
			}
			if grown := h.rss(t) - rss; grown > maxRSSGrowth {
				t.Errorf("daemon RSS grew by %d MiB", grown>>20)
			}
			h.settle(t, before)
		})
	}
}

func hostilePulls() []hostileCase {
	return []hostileCase{
		{name: "dot-dot entry to /tmp", code: codes.InvalidArgument, want: "leaves the root", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "dotdot", imagetest.File(up+h.escape[1:], "x", 0o644))
		}},
		{name: "dot-dot entry to the host", code: codes.InvalidArgument, want: "leaves the root", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "dotdot-host", imagetest.File(up+h.host[1:]+"/pwned", "x", 0o644))
		}},
		{name: "absolute entry stays inside", code: codes.OK, ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "absolute", imagetest.File(h.escape, "x", 0o644), imagetest.File(h.sentinel, "x", 0o644))
		}},
		{name: "write through an absolute symlink", code: codes.InvalidArgument, want: "evil", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "symlink-abs", imagetest.Symlink("evil", h.host), imagetest.File("evil/pwned", "x", 0o644))
		}},
		{name: "mkdir through a climbing symlink", code: codes.InvalidArgument, want: "evil", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "symlink-up", imagetest.Symlink("evil", up+h.host[1:]), imagetest.Dir("evil/sub", 0o755))
		}},
		{name: "write through a symlink of a lower layer", code: codes.InvalidArgument, want: "evil", orOK: true, ref: func(t *testing.T, h *hostileNode) string {
			return h.pushLayers(t, "symlink-lower", []imagetest.Entry{imagetest.Symlink("evil", h.host)}, []imagetest.Entry{imagetest.File("evil/pwned", "x", 0o644)})
		}},
		{name: "hardlink to a host file", code: codes.InvalidArgument, want: "leaves the root", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "hardlink-up", imagetest.Hardlink("h", up+h.sentinel[1:]))
		}},
		{name: "hardlink to /etc/shadow", code: codes.InvalidArgument, want: "shadow", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "hardlink-shadow", imagetest.Hardlink("shadow", "/etc/shadow"))
		}},
		{name: "hardlink through a symlink", code: codes.InvalidArgument, want: "l/sentinel", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "hardlink-symlink", imagetest.Symlink("l", h.host), imagetest.Hardlink("h", "l/sentinel"))
		}},
		{name: "whiteout of a host file", code: codes.InvalidArgument, want: ".wh.sentinel", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "whiteout", imagetest.Whiteout(up+h.sentinel[1:]))
		}},
		{name: "opaque whiteout of the host directory", code: codes.InvalidArgument, want: ".wh..wh..opq", ref: func(t *testing.T, h *hostileNode) string {
			return h.push(t, "opaque", imagetest.Opaque(up+h.host[1:]))
		}},
		{name: "decompression bomb", code: codes.FailedPrecondition, want: "exceeds", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			b := imagetest.Image{Layers: []imagetest.Layer{bombLayer(t)}}.Build(t)
			imagetest.Push(t, h.Registry, "hostile/bomb", "1", b)
			return h.Registry + "/hostile/bomb:1"
		}},
		{name: "layer served with other content", code: codes.FailedPrecondition, want: "does not match its descriptor", ref: func(t *testing.T, h *hostileNode) string {
			// Uncompressed, so that the bytes served have the size the
			// manifest says: only their digest tells them apart.
			l := imagetest.NewLayer(t, image.CompressionNone, imagetest.File("f", "real", 0o644))
			ref := h.liar.add(imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t), "swapped")
			h.liar.serve(l.Desc.Digest, imagetest.NewLayer(t, image.CompressionNone, imagetest.File("f", "fake", 0o644)).Blob)
			return ref
		}},
		{name: "layer longer than its descriptor", code: codes.FailedPrecondition, want: "longer than", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			l := smallLayer(t, "endless")
			ref := h.liar.add(imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t), "endless")
			h.liar.mu.Lock()
			h.liar.endless[l.Desc.Digest] = true
			h.liar.mu.Unlock()
			return ref
		}},
		{name: "config served with other content", code: codes.FailedPrecondition, want: "digest", ref: func(t *testing.T, h *hostileNode) string {
			b := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "c")}}.Build(t)
			ref := h.liar.add(b, "config")
			h.liar.serve(b.Config.Digest, bytes.Repeat([]byte{' '}, int(b.Config.Size)))
			return ref
		}},
		{name: "manifest pulled by digest served with other content", code: codes.FailedPrecondition, want: "digest", ref: func(t *testing.T, h *hostileNode) string {
			b := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "by digest")}}.Build(t)
			other := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "other")}}.Build(t)
			h.liar.add(other, "other")
			h.liar.add(b, "by-digest")
			h.liar.serve(b.Target.Digest, other.Blob(t, other.Target.Digest))
			return h.liar.addr + "/hostile/liar@" + b.Target.Digest.String()
		}},
		{name: "manifest over the limit, sent without a length", code: codes.InvalidArgument, want: "limit", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			b := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "m")}, Annotations: map[string]string{"a": strings.Repeat("x", image.MaxManifestSize)}}.Build(t)
			ref := h.liar.add(b, "huge")
			h.liar.mu.Lock()
			h.liar.noLength[b.Target.Digest] = true
			h.liar.mu.Unlock()
			return ref
		}},
		{name: "config over the limit", code: codes.InvalidArgument, want: "limit", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			b := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "c")}, Config: ocispec.ImageConfig{Env: []string{"X=" + strings.Repeat("x", image.MaxConfigSize)}}}.Build(t)
			return h.liar.add(b, "hugeconfig")
		}},
		{name: "indexes nested ten deep", code: codes.InvalidArgument, want: "nested more than", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			return h.liar.add(nested(t, 10), "nested")
		}},
		{name: "manifest whose layer is an index", code: codes.InvalidArgument, want: "not a layer", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			inner := nested(t, 1)
			l := imagetest.Layer{Desc: inner.Target, DiffID: digest.FromString("x"), Blob: inner.Blobs[len(inner.Blobs)-1].Data}
			b := imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t)
			b.Blobs = append(b.Blobs, inner.Blobs...)
			return h.liar.add(b, "layer-index")
		}},
		{name: "config with an invalid diff ID", code: codes.InvalidArgument, want: "diff ID", quick: true, ref: func(t *testing.T, h *hostileNode) string {
			l := smallLayer(t, "d")
			l.DiffID = "sha256:abc"
			return h.pushImage(t, "short-diffid", imagetest.Image{Layers: []imagetest.Layer{l}})
		}},
		{name: "config that lies about the diff ID", code: codes.InvalidArgument, want: "diff ID", ref: func(t *testing.T, h *hostileNode) string {
			l := smallLayer(t, "d")
			l.DiffID = digest.FromString("another layer")
			return h.pushImage(t, "lying-diffid", imagetest.Image{Layers: []imagetest.Layer{l}})
		}},
	}
}

// push pushes a one-layer image of entries to the node's registry.
func (h *hostileNode) push(t *testing.T, name string, entries ...imagetest.Entry) string {
	t.Helper()
	return h.pushLayers(t, name, entries)
}

// pushLayers pushes an image with a layer of each list of entries.
func (h *hostileNode) pushLayers(t *testing.T, name string, layers ...[]imagetest.Entry) string {
	t.Helper()
	var img imagetest.Image
	for _, es := range layers {
		img.Layers = append(img.Layers, imagetest.NewLayer(t, image.CompressionGzip, es...))
	}
	return h.pushImage(t, name, img)
}

func (h *hostileNode) pushImage(t *testing.T, name string, img imagetest.Image) string {
	t.Helper()
	imagetest.Push(t, h.Registry, "hostile/"+name, "1", img.Build(t))
	return h.Registry + "/hostile/" + name + ":1"
}

func smallLayer(t *testing.T, content string) imagetest.Layer {
	return imagetest.NewLayer(t, image.CompressionGzip, imagetest.File("f", content, 0o644))
}

// bombLayer is a gzip layer whose one file claims 64 GiB: a few MiB of
// zeros follow, cut short. It is refused on the claim, before any of it
// is written.
func bombLayer(t *testing.T) imagetest.Layer {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Mode: 0o644, Size: 64 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	blob := out.Bytes()
	return imagetest.Layer{
		Desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))},
		DiffID: digest.FromString("never reached"),
		Blob:   blob,
	}
}

// nested is an image under depth indexes, each listing the next.
func nested(t *testing.T, depth int) imagetest.Built {
	t.Helper()
	b := imagetest.Image{Layers: []imagetest.Layer{smallLayer(t, "n")}}.Build(t)
	child := b.Target
	for range depth {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{child}}
		idx.SchemaVersion = 2
		data, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		child = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(data), Size: int64(len(data))}
		b.Blobs = append(b.Blobs, imagetest.Blob{Desc: child, Data: data})
	}
	b.Target = child
	return b
}
