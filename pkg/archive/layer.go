package archive

import (
	"bufio"
	"context"
	"fmt"
	"hash"
	"io"

	"github.com/cri-runtime/cri-runtime/pkg/archive/compression"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// ApplyLayer decompresses a layer blob published under mediaType, applies
// it onto root and returns its DiffID (the sha256 of the uncompressed tar
// stream, computed in the same pass) and the length of that stream. The
// caller checks the DiffID against the image config: a mismatch means the
// tree now holds content nobody vouched for, and the snapshot must go.
//
// The blob's magic bytes must agree with mediaType (InvalidArgument
// otherwise). Bytes after the end of the tar are read and hashed too,
// because the DiffID covers the whole stream.
func ApplyLayer(ctx context.Context, root string, compressed io.Reader, mediaType string, opts ...ApplyOpt) (digest.Digest, int64, error) {
	rc, err := compression.DecompressLayer(compressed, mediaType)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	hr := &hashingReader{r: rc, h: digest.SHA256.Hash()}
	// Buffered above the hash: the tar reader's 512-byte header and
	// padding reads would each be a read of the decompressor's pipe
	// (6,220 reads for a 28 MB layer of 2,000 files, 916 buffered).
	tr := bufio.NewReaderSize(hr, 64<<10)
	if _, err := Apply(ctx, root, tr, opts...); err != nil {
		return "", hr.n, err
	}
	if err := drain(ctx, tr, newOptions(opts).maxSize); err != nil {
		return "", hr.n, err
	}
	return digest.NewDigest(digest.SHA256, hr.h), hr.n, nil
}

// drain reads what follows the end-of-archive marker (tar writers pad to
// a record size) into the hash. Under a size bound the trailer may not
// exceed it: a bomb can hide there as well as in a file.
func drain(ctx context.Context, r io.Reader, maxSize int64) error {
	if maxSize > 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if maxSize > 0 && n > maxSize {
			return fmt.Errorf("layer exceeds %d bytes after the end of its tar: %w", maxSize, errdefs.ErrFailedPrecondition)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("layer stream after the end of its tar: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// hashingReader hashes and counts what passes through it. It is
// deliberately not an io.Seeker, so the tar reader cannot skip bytes past
// the hash.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// SyncFS flushes the filesystem holding root to disk with one syncfs(2),
// instead of an fsync per file: call it once a layer is applied and before
// it is committed.
func SyncFS(root string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return rootError(root, "open", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return rootError(root, "syncfs", err)
	}
	return nil
}
