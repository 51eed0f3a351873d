// Package compression owns the decompression of image layer blobs: it
// detects gzip and zstd by their magic bytes, maps OCI and Docker layer
// media types to a compression, and refuses a blob whose bytes disagree
// with the media type it was published under.
//
// It imports only leaves of the project (errdefs) and the compression
// libraries.
package compression

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/klauspost/compress/zstd"
)

// Compression is the compression of a layer blob.
type Compression int

const (
	// Uncompressed is a plain tar stream.
	Uncompressed Compression = iota
	// Gzip is a gzip stream (RFC 1952), possibly of several members.
	Gzip
	// Zstd is a Zstandard stream (RFC 8878), possibly of several frames.
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

const (
	// peekSize is the read buffer put in front of the blob. It only needs
	// to hold the magic, but a larger one turns the decompressors' small
	// header reads into few large reads of the (often network) source.
	peekSize = 64 << 10

	// zstdMaxWindow bounds the memory a hostile zstd frame can make us
	// allocate for its window. 128 MiB admits `zstd --long=27`, the
	// largest window common tools produce; the library default is 512 MiB.
	zstdMaxWindow = 128 << 20

	// zstdConcurrency is the number of blocks decoded ahead in their own
	// goroutines. Two keeps one core decoding while the consumer writes
	// files; more only costs memory on the small machines nodes often are.
	zstdConcurrency = 2

	// Read-ahead of the gzip reader: blocks of 1 MiB, 4 of them in flight.
	// Inflate is sequential, so the gain is the overlap of inflate, CRC and
	// the consumer, which a few large blocks already give.
	gzipBlockSize = 1 << 20
	gzipBlocks    = 4
)

// Detect reports the compression announced by the first bytes of a blob.
// Anything that is neither gzip nor zstd is taken for an uncompressed tar.
func Detect(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	}
	return Uncompressed
}

// DecompressStream detects the compression of r by its magic bytes and
// returns a reader of the decompressed bytes. Close releases the
// decompressor's goroutines and buffers; it does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, peekSize)
	// A short stream is not an error here: an empty or tiny blob is simply
	// not compressed, and the tar reader will judge it.
	head, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("read layer magic: %w", err)
	}
	c := Detect(head)
	switch c {
	case Gzip:
		zr, err := newGzipReader(br)
		return zr, c, err
	case Zstd:
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(zstdConcurrency),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxWindow),
		)
		if err != nil {
			return nil, c, fmt.Errorf("zstd reader: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		return zstdReadCloser{zr}, c, nil
	}
	return io.NopCloser(br), c, nil
}

// DecompressLayer is DecompressStream for a blob published under
// mediaType: it refuses a media type that is not a layer we can apply and
// a blob whose magic bytes disagree with its media type, so a registry
// cannot make us hash and unpack something other than what the manifest
// describes.
func DecompressLayer(r io.Reader, mediaType string) (io.ReadCloser, error) {
	want, err := FromMediaType(mediaType)
	if err != nil {
		return nil, err
	}
	rc, got, err := DecompressStream(r)
	if err != nil {
		return nil, err
	}
	if got != want {
		rc.Close()
		return nil, fmt.Errorf("layer of media type %q (%s) has %s content: %w",
			mediaType, want, got, errdefs.ErrInvalidArgument)
	}
	return rc, nil
}

// zstdReadCloser adapts the decoder, whose Close returns nothing.
type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}

// Layer media types, OCI and Docker schema 2.
const (
	MediaTypeOCILayer        = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd    = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeDockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// FromMediaType returns the compression of a layer media type. Parameters
// after ';' are ignored. Foreign (non-distributable) layers and encrypted
// layers are NotImplemented: registries do not serve the former, they are
// the base layers of Windows images, and we hold no keys for the latter.
// Anything else that is not a layer media type is InvalidArgument.
func FromMediaType(mt string) (Compression, error) {
	base, _, _ := strings.Cut(mt, ";")
	base = strings.TrimSpace(base)
	switch base {
	case MediaTypeOCILayer, MediaTypeDockerLayer:
		return Uncompressed, nil
	case MediaTypeOCILayerGzip, MediaTypeDockerLayerGzip:
		return Gzip, nil
	case MediaTypeOCILayerZstd, MediaTypeDockerLayerZstd:
		return Zstd, nil
	}
	if strings.HasPrefix(base, "application/vnd.oci.image.layer.nondistributable.") ||
		strings.HasPrefix(base, "application/vnd.docker.image.rootfs.foreign.") ||
		strings.HasSuffix(base, "+encrypted") {
		return Uncompressed, fmt.Errorf("layer media type %q: %w", mt, errdefs.ErrNotImplemented)
	}
	return Uncompressed, fmt.Errorf("media type %q is not a layer: %w", mt, errdefs.ErrInvalidArgument)
}
