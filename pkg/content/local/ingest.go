package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/opencontainers/go-digest"
)

// Names of the files of an ingest directory (see the package doc).
const (
	refFile       = "ref"
	dataFile      = "data"
	startedAtFile = "startedat"
	updatedAtFile = "updatedat"
	totalFile     = "total"
	expectedFile  = "expected"

	tmpPrefix = ".tmp-"
)

// ingestDir names the ingest of ref by a hash, so any ref string is a safe
// file name.
func (s *store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.ingestRoot(), hex.EncodeToString(sum[:]))
}

// lockRef takes the in-process lock of ref, or fails at once with
// Unavailable: callers that want to wait use content.OpenWriter.
func (s *store) lockRef(ref string) error {
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if _, held := s.refs[ref]; held {
		return fmt.Errorf("ref %q is locked by another writer: %w", ref, errdefs.ErrUnavailable)
	}
	s.refs[ref] = struct{}{}
	return nil
}

func (s *store) unlockRef(ref string) {
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	delete(s.refs, ref)
}

// Status implements content.IngestManager.
func (s *store) Status(ctx context.Context, ref string) (content.Status, error) {
	if err := ctx.Err(); err != nil {
		return content.Status{}, err
	}
	st, err := readStatus(s.ingestDir(ref))
	if err == nil && st.Ref != ref {
		err = fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return st, err
}

// ListStatuses implements content.IngestManager.
func (s *store) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, fmt.Errorf("ingest filters: %w", err)
	}
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []content.Status
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		st, err := readStatus(filepath.Join(s.ingestRoot(), e.Name()))
		if errdefs.IsNotFound(err) {
			continue // committed or aborted while we listed
		}
		if err != nil {
			return nil, err
		}
		if filter.Match(statusAdaptor(st)) {
			out = append(out, st)
		}
	}
	return out, nil
}

func statusAdaptor(st content.Status) filters.Adaptor {
	fields := map[string]string{"ref": st.Ref}
	if st.Expected != "" {
		fields["expected"] = st.Expected.String()
	}
	if st.Total > 0 {
		fields["total"] = strconv.FormatInt(st.Total, 10)
	}
	return filters.Map(fields, nil)
}

// Abort implements content.IngestManager. It takes the ref lock so it never
// pulls an ingest from under a writer.
func (s *store) Abort(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.lockRef(ref); err != nil {
		return err
	}
	defer s.unlockRef(ref)
	dir := s.ingestDir(ref)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	return s.removeIngest(dir)
}

// readStatus reads an ingest directory. NotFound if it, its ref or its data
// is missing: such a directory is on its way out (or was never whole).
// Unreadable times and expectations read as unknown rather than failing, so
// a torn metadata write never makes an ingest unusable.
func readStatus(dir string) (content.Status, error) {
	ref, err := os.ReadFile(filepath.Join(dir, refFile))
	if err != nil {
		return content.Status{}, ingestFileError(dir, err)
	}
	fi, err := os.Stat(filepath.Join(dir, dataFile))
	if err != nil {
		return content.Status{}, ingestFileError(dir, err)
	}
	st := content.Status{
		Ref:       string(ref),
		Offset:    fi.Size(),
		StartedAt: readTime(filepath.Join(dir, startedAtFile)),
		UpdatedAt: readTime(filepath.Join(dir, updatedAtFile)),
	}
	if fi.ModTime().After(st.UpdatedAt) {
		st.UpdatedAt = fi.ModTime()
	}
	if b, err := os.ReadFile(filepath.Join(dir, totalFile)); err == nil {
		st.Total, _ = strconv.ParseInt(string(b), 10, 64)
	}
	if b, err := os.ReadFile(filepath.Join(dir, expectedFile)); err == nil {
		if d, err := digest.Parse(string(b)); err == nil {
			st.Expected = d
		}
	}
	return st, nil
}

func ingestFileError(dir string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ingest %s: %w", filepath.Base(dir), errdefs.ErrNotFound)
	}
	return fmt.Errorf("ingest %s: %w", filepath.Base(dir), err)
}

func readTime(path string) time.Time {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b))
	return t
}

func writeTime(path string, t time.Time) error {
	return os.WriteFile(path, []byte(t.UTC().Format(time.RFC3339Nano)), fileMode)
}

// createIngest builds a new ingest directory for ref under a temporary name
// and renames it into place, so a crash never leaves half of one.
func (s *store) createIngest(dir, ref string, total int64, expected digest.Digest, now time.Time) error {
	tmp, err := os.MkdirTemp(s.ingestRoot(), tmpPrefix)
	if err != nil {
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	files := []struct {
		name, value string
	}{
		{refFile, ref},
		{dataFile, ""},
		{totalFile, strconv.FormatInt(total, 10)},
		{expectedFile, expected.String()},
	}
	for _, f := range files {
		if err = os.WriteFile(filepath.Join(tmp, f.name), []byte(f.value), fileMode); err != nil {
			break
		}
	}
	if err == nil {
		err = writeTime(filepath.Join(tmp, startedAtFile), now)
	}
	if err == nil {
		err = writeTime(filepath.Join(tmp, updatedAtFile), now)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	return nil
}

// removeIngest makes an ingest disappear at once by renaming it to a
// temporary name, then deletes it. NewStore finishes the job after a crash.
func (s *store) removeIngest(dir string) error {
	tmp := filepath.Join(s.ingestRoot(), tmpPrefix+rand.Text())
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("remove ingest %s: %w", filepath.Base(dir), err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove ingest %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// removeTemporaries deletes what a crash left under a temporary name.
func (s *store) removeTemporaries() error {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return fmt.Errorf("content store %s: %w", s.root, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(s.ingestRoot(), e.Name())); err != nil {
				return fmt.Errorf("content store %s: %w", s.root, err)
			}
		}
	}
	return nil
}
