// Package layertest generates realistic layer tar streams for the tests and
// benchmarks of pkg/archive: a tree of source-like text files of mixed
// sizes, directories, symlinks and hardlinks, deterministic for a seed.
//
// It is test support; it imports only the standard library.
package layertest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Spec describes the layer to generate.
type Spec struct {
	Files     int   // regular files
	Bytes     int64 // approximate total of regular-file content
	Symlinks  int
	Hardlinks int
	Seed      uint64
}

// Realistic returns the benchmark layer: ~5,000 files, ~100 MB of content.
func Realistic() Spec {
	return Spec{Files: 5000, Bytes: 100 << 20, Symlinks: 200, Hardlinks: 100, Seed: 1}
}

// Stats counts what Write produced.
type Stats struct {
	Files, Dirs, Symlinks, Hardlinks int
	ContentBytes                     int64 // regular-file content
}

// words is the vocabulary of the generated text.
func words() []string {
	return []string{
		"func", "return", "if", "err", "nil", "for", "range", "struct", "type", "var",
		"const", "package", "import", "string", "int64", "context", "ctx", "buf", "len",
		"append", "make", "map", "interface", "error", "fmt.Errorf", "defer", "Close()",
		"switch", "case", "default", "go", "chan", "select", "true", "false", "byte",
		"config", "handler", "request", "response", "client", "server", "value", "key",
		"index", "count", "offset", "size", "name", "path", "root", "layer", "digest",
		"=", ":=", "==", "!=", "{", "}", "(", ")", "[]", "//", "+", "-", "*", "&&", "||",
	}
}

// Write writes the layer described by s to w as an uncompressed tar.
func Write(w io.Writer, s Spec) (Stats, error) {
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	tw := tar.NewWriter(w)
	mtime := time.Unix(1700000000, 0)
	var st Stats
	vocab := words()

	// About 40 files a directory, three levels deep, like a source tree.
	nDirs := max(1, s.Files/40)
	dirs := make([]string, 0, nDirs)
	for i := range nDirs {
		var d string
		switch {
		case i < 8:
			d = fmt.Sprintf("usr/src/pkg%d/", i)
		case i < 64:
			d = fmt.Sprintf("%smod%d/", dirs[i%8], i)
		default:
			d = fmt.Sprintf("%sinternal%d/", dirs[8+i%56], i)
		}
		dirs = append(dirs, d)
	}
	for _, d := range []string{"usr/", "usr/src/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return st, err
		}
	}
	sizes := fileSizes(rng, s.Files, s.Bytes)
	var content bytes.Buffer
	var files []string
	f := 0
	for di, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return st, err
		}
		st.Dirs++
		// Spread files evenly over the directories.
		end := (di + 1) * s.Files / len(dirs)
		for ; f < end; f++ {
			name := fmt.Sprintf("%sfile%d.go", d, f)
			content.Reset()
			sourceLike(rng, vocab, &content, sizes[f])
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(content.Len()), ModTime: mtime}
			if err := tw.WriteHeader(hdr); err != nil {
				return st, err
			}
			if _, err := tw.Write(content.Bytes()); err != nil {
				return st, err
			}
			files = append(files, name)
			st.Files++
			st.ContentBytes += hdr.Size
		}
	}
	for i := range s.Symlinks {
		target := "../" + files[rng.IntN(len(files))]
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/src/link" + strconv.Itoa(i), Linkname: target, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return st, err
		}
		st.Symlinks++
	}
	for i := range s.Hardlinks {
		hdr := &tar.Header{Typeflag: tar.TypeLink, Name: "usr/src/hard" + strconv.Itoa(i), Linkname: files[rng.IntN(len(files))], ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return st, err
		}
		st.Hardlinks++
	}
	return st, tw.Close()
}

// fileSizes draws n sizes summing to about total: most files small, a few
// large, the shape of a real tree.
func fileSizes(rng *rand.Rand, n int, total int64) []int {
	w := make([]float64, n)
	var sum float64
	for i := range w {
		// Pareto-like: 1/u^0.8 gives a long tail of large files.
		u := rng.Float64()*0.999 + 0.001
		w[i] = 1 / pow08(u)
		sum += w[i]
	}
	out := make([]int, n)
	for i := range w {
		out[i] = int(float64(total) * w[i] / sum)
	}
	return out
}

func pow08(u float64) float64 { return math.Pow(u, 0.8) }

// sourceLike appends about n bytes of lines that look like program text, so
// the content compresses like a real source tree (about 3-4x with gzip).
func sourceLike(rng *rand.Rand, vocab []string, b *bytes.Buffer, n int) {
	for b.Len() < n {
		indent := rng.IntN(4)
		for range indent {
			b.WriteByte('\t')
		}
		nw := 2 + rng.IntN(9)
		for i := range nw {
			if i > 0 {
				b.WriteByte(' ')
			}
			if rng.IntN(6) == 0 {
				b.WriteString("v")
				b.WriteString(strconv.Itoa(rng.IntN(5000)))
			} else {
				b.WriteString(vocab[rng.IntN(len(vocab))])
			}
		}
		b.WriteByte('\n')
	}
	b.Truncate(n)
}
