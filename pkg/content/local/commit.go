package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
)

// Commit implements content.Writer.
//
// On a mismatch (FailedPrecondition) or an I/O error the writer stays open
// and keeps the ref, so the caller can Truncate(0) and rewrite, or Close and
// Abort; the ingest is untouched. On success, and on AlreadyExists, the
// ingest is gone and the ref released.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fp == nil {
		return w.closedError()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var info content.Info
	for _, opt := range opts {
		if err := opt(&info); err != nil {
			return err
		}
	}
	dgst := w.digester.Digest()
	if err := w.verify(size, expected, dgst); err != nil {
		return err
	}
	target, err := w.s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := w.publish(target, dgst, info.Labels); err != nil {
		if errors.Is(err, fs.ErrExist) {
			w.fp.Close()
			w.discard()
			return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("ingest %q: commit %s: %w", w.ref, dgst, err)
	}
	// The blob is durable; the ingest is garbage from here on, and a failure
	// to remove it leaves a directory that resumes into AlreadyExists.
	w.fp.Close()
	w.discard()
	return nil
}

// verify checks what was written against Commit's arguments and the
// writer's own expectations, naming both values on a mismatch.
func (w *writer) verify(size int64, expected, dgst digest.Digest) error {
	checks := []struct {
		ok   bool
		what string
	}{
		{size <= 0 || size == w.offset, fmt.Sprintf("size is %d, commit expects %d", w.offset, size)},
		{w.total <= 0 || w.total == w.offset, fmt.Sprintf("size is %d, writer expects %d", w.offset, w.total)},
		{expected == "" || expected == dgst, fmt.Sprintf("digest is %s, commit expects %s", dgst, expected)},
		{w.expected == "" || w.expected == dgst, fmt.Sprintf("digest is %s, writer expects %s", dgst, w.expected)},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("ingest %q: %s: %w", w.ref, c.what, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// publish makes the data file the blob at target: fsync it, make it
// read-only with the commit time as mtime, link it in (fs.ErrExist if the
// blob is already there) with its labels, and fsync the blob directory. On
// failure the data file is writable again and still the ingest's.
func (w *writer) publish(target string, dgst digest.Digest, labels map[string]string) error {
	if err := w.fp.Sync(); err != nil {
		return err
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	now := time.Now()
	if err := w.fp.Chmod(blobMode); err != nil {
		return err
	}
	err := os.Chtimes(w.dataPath(), now, now)
	if err == nil {
		// Under labelsMu, so no reader sees the blob without its labels and
		// a racing Delete cannot leave them behind.
		w.s.labelsMu.Lock()
		err = linkOrRename(w.dataPath(), target)
		if err == nil && labels != nil {
			w.s.setLabelsLocked(dgst, copyLabels(labels))
		}
		w.s.labelsMu.Unlock()
	}
	if err != nil {
		w.fp.Chmod(fileMode)
		return err
	}
	return syncDir(dir)
}

// linkOrRename puts src at dst without replacing dst. A hard link makes the
// no-replace check atomic; filesystems without links get a rename guarded
// by a stat, where a racing commit of the same bytes is harmless.
func linkOrRename(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return fs.ErrExist
	}
	return os.Rename(src, dst)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// discard removes the ingest after its bytes became (or already were) a
// blob and releases the ref; w.mu is held.
func (w *writer) discard() {
	_ = w.s.removeIngest(w.dir)
	w.release()
}
