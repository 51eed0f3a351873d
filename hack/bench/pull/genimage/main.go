// Command genimage writes a realistic benchmark image as an OCI image layout:
// N gzip layers of many text-like, compressible files (source code, configs,
// docs) with a share of incompressible binary files, like a real language
// runtime or AI framework image. The same seed gives the same bytes.
//
//	genimage -out DIR -tag bench:6layer -layers 6 -size 300MiB -files 12000
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	out := flag.String("out", "", "OCI layout directory to write")
	tag := flag.String("tag", "latest", "tag in the layout's index")
	layers := flag.Int("layers", 6, "number of layers")
	size := flag.String("size", "300MiB", "total uncompressed file bytes (KiB, MiB, GiB suffixes)")
	files := flag.Int("files", 12000, "total number of files")
	binary := flag.Float64("binary", 0.2, "share of bytes in incompressible binary files")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genimage: -out is required")
		os.Exit(2)
	}
	total, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genimage:", err)
		os.Exit(2)
	}
	g := &gen{out: *out, rnd: rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15)), binary: *binary}
	if err := g.run(*tag, *layers, total, *files); err != nil {
		fmt.Fprintln(os.Stderr, "genimage:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

type gen struct {
	out    string
	rnd    *rand.Rand
	binary float64
}

func (g *gen) run(tag string, nLayers int, total int64, nFiles int) error {
	if err := os.MkdirAll(filepath.Join(g.out, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	var layerDescs []ocispec.Descriptor
	var diffIDs []digest.Digest
	for i := 0; i < nLayers; i++ {
		desc, diffID, err := g.layer(i, total/int64(nLayers), nFiles/nLayers)
		if err != nil {
			return err
		}
		layerDescs = append(layerDescs, desc)
		diffIDs = append(diffIDs, diffID)
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/usr/bin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cfgDesc, err := g.writeJSON(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return err
	}
	mf := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: layerDescs}
	mfDesc, err := g.writeJSON(ocispec.MediaTypeImageManifest, mf)
	if err != nil {
		return err
	}
	mfDesc.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mfDesc}}
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(g.out, "index.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(g.out, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func (g *gen) writeJSON(mt string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.FromBytes(b)
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))},
		os.WriteFile(filepath.Join(g.out, "blobs", "sha256", d.Encoded()), b, 0o644)
}

// layer writes one gzip layer of about size bytes in n files.
func (g *gen) layer(idx int, size int64, n int) (ocispec.Descriptor, digest.Digest, error) {
	tmp, err := os.CreateTemp(filepath.Join(g.out, "blobs"), "layer-")
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	compressed := sha256.New()
	zw := pgzip.NewWriter(io.MultiWriter(tmp, compressed))
	uncompressed := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed))
	if err := g.fill(tw, idx, size, n); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	st, err := tmp.Stat()
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	d := sumDigest(compressed)
	if err := os.Rename(tmp.Name(), filepath.Join(g.out, "blobs", "sha256", d.Encoded())); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: st.Size()}, sumDigest(uncompressed), nil
}

func sumDigest(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

var words = strings.Fields(`func return if else for range struct type package import var const error nil
	string int64 context ctx err value key name labels digest size offset reader writer buffer layer snapshot
	mount image manifest config index platform content store commit abort status lease namespace filter event
	self def class lambda yield async await tensor model weight gradient batch shape dtype device float32`)

func (g *gen) fill(tw *tar.Writer, idx int, size int64, n int) error {
	mtime := time.Unix(1700000000, 0)
	per := size / int64(max(n, 1))
	dirs := map[string]bool{}
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("opt/l%d/pkg%03d/mod%02d", idx, i/200, (i/20)%10)
		if !dirs[dir] {
			parts := strings.Split(dir, "/")
			for j := range parts {
				d := strings.Join(parts[:j+1], "/")
				if !dirs[d] {
					dirs[d] = true
					if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
						return err
					}
				}
			}
		}
		// File sizes vary around the mean, a few large ones like shared libraries.
		sz := per/2 + g.rnd.Int64N(per+1)
		if i%97 == 0 {
			sz *= 8
		}
		isBin := g.rnd.Float64() < g.binary
		body := g.body(sz, isBin)
		name := fmt.Sprintf("%s/file%05d.%s", dir, i, map[bool]string{true: "so", false: "py"}[isBin])
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mtime}); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
		if i%50 == 0 {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".link", Linkname: filepath.Base(name), ModTime: mtime}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gen) body(n int64, binary bool) []byte {
	if binary {
		b := make([]byte, n)
		for i := 0; i+8 <= len(b); i += 8 {
			v := g.rnd.Uint64()
			for j := 0; j < 8; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	var buf bytes.Buffer
	buf.Grow(int(n) + 80)
	for int64(buf.Len()) < n {
		indent := g.rnd.IntN(4)
		buf.WriteString(strings.Repeat("\t", indent))
		for w := 3 + g.rnd.IntN(8); w > 0; w-- {
			buf.WriteString(words[g.rnd.IntN(len(words))])
			if g.rnd.IntN(5) == 0 {
				buf.WriteString(strconv.Itoa(g.rnd.IntN(100000)))
			}
			buf.WriteByte(' ')
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()[:n]
}
