package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/testsuite"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestSuite(t *testing.T) {
	testsuite.Run(t, "local", func(ctx context.Context, t *testing.T) (context.Context, content.Store) {
		return ctx, newTestStore(t, t.TempDir())
	})
}

func newTestStore(t *testing.T, root string) content.Store {
	t.Helper()
	cs, err := NewStore(root)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return cs
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.SHA256.FromBytes(b), Size: int64(len(b))}
}

func openWriter(t *testing.T, cs content.Store, ref string, desc ocispec.Descriptor) content.Writer {
	t.Helper()
	w, err := cs.Writer(context.Background(), content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w content.Writer, b []byte) {
	t.Helper()
	if n, err := w.Write(b); err != nil || n != len(b) {
		t.Fatalf("Write: %d, %v", n, err)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
	}
}

func TestLayoutAndModes(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "content")
	cs := newTestStore(t, root)
	b := []byte("layout")
	desc := descOf(b)
	w := openWriter(t, cs, "layout-ref", desc)
	write(t, w, b[:3])

	sum := sha256.Sum256([]byte("layout-ref"))
	ingest := filepath.Join(root, "ingest", hex.EncodeToString(sum[:]))
	checkMode(t, root, dirMode)
	checkMode(t, ingest, dirMode)
	for _, name := range []string{refFile, dataFile, startedAtFile, updatedAtFile, totalFile, expectedFile} {
		checkMode(t, filepath.Join(ingest, name), fileMode)
	}
	if got, _ := os.ReadFile(filepath.Join(ingest, refFile)); string(got) != "layout-ref" {
		t.Errorf("ref file holds %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(ingest, expectedFile)); string(got) != desc.Digest.String() {
		t.Errorf("expected file holds %q", got)
	}

	write(t, w, b[3:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(root, "blobs", "sha256", desc.Digest.Encoded())
	checkMode(t, blob, blobMode)
	checkMode(t, filepath.Dir(blob), dirMode)
	if got, _ := os.ReadFile(blob); string(got) != "layout" {
		t.Errorf("blob holds %q", got)
	}
	if _, err := os.Stat(ingest); !os.IsNotExist(err) {
		t.Errorf("ingest directory survives its commit: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "ingest"))
	if len(entries) != 0 {
		t.Errorf("ingest/ not empty after commit: %v", entries)
	}
}

// TestResumeAfterRestart guards the daemon-restart case: a new store on the
// same root resumes the ingest; labels, kept in memory only, are gone.
func TestResumeAfterRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cs := newTestStore(t, root)
	labelled := []byte("labelled")
	ldesc := descOf(labelled)
	w := openWriter(t, cs, "l", ldesc)
	write(t, w, labelled)
	if err := w.Commit(ctx, 0, "", content.WithLabels(map[string]string{"a": "b"})); err != nil {
		t.Fatal(err)
	}
	b := []byte("resumed after a restart")
	desc := descOf(b)
	w = openWriter(t, cs, "restart", desc)
	write(t, w, b[:7])
	w.Close()

	cs = newTestStore(t, root)
	w = openWriter(t, cs, "restart", desc)
	if st, _ := w.Status(); st.Offset != 7 || st.Expected != desc.Digest || st.Total != desc.Size {
		t.Fatalf("Status after restart = %+v", st)
	}
	write(t, w, b[7:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	info, err := cs.Info(ctx, ldesc.Digest)
	if err != nil || len(info.Labels) != 0 {
		t.Fatalf("Info after restart = %+v, %v; labels are documented as in memory only", info, err)
	}
}

// TestResumeWithOtherExpectationsRestarts guards the documented choice: an
// ingest recorded for other content restarts empty rather than resuming
// into a commit that cannot succeed.
func TestResumeWithOtherExpectationsRestarts(t *testing.T) {
	cs := newTestStore(t, t.TempDir())
	a, b := []byte("first content"), []byte("second content")
	w := openWriter(t, cs, "same-ref", descOf(a))
	write(t, w, a[:5])
	w.Close()

	w = openWriter(t, cs, "same-ref", descOf(b))
	st, _ := w.Status()
	if st.Offset != 0 || st.Expected != descOf(b).Digest || st.Total != int64(len(b)) {
		t.Fatalf("Status = %+v, want a restarted ingest expecting %s", st, descOf(b).Digest)
	}
	w.Close()

	// Without expectations the recorded ones stay and the data is kept.
	w = openWriter(t, cs, "same-ref", ocispec.Descriptor{})
	write(t, w, b[:4])
	w.Close()
	w = openWriter(t, cs, "same-ref", ocispec.Descriptor{})
	if st, _ := w.Status(); st.Offset != 4 || st.Expected != descOf(b).Digest {
		t.Fatalf("Status = %+v, want offset 4 expecting %s", st, descOf(b).Digest)
	}
}

func TestTruncateOtherSizesNotImplemented(t *testing.T) {
	cs := newTestStore(t, t.TempDir())
	w := openWriter(t, cs, "t", ocispec.Descriptor{})
	write(t, w, []byte("0123456789"))
	if err := w.Truncate(5); !errdefs.IsNotImplemented(err) {
		t.Fatalf("Truncate(5) = %v, want NotImplemented", err)
	}
	if err := w.Truncate(10); err != nil {
		t.Fatalf("Truncate to the current size = %v, want a no-op", err)
	}
}

func TestReaderAtSizeMismatch(t *testing.T) {
	ctx := context.Background()
	cs := newTestStore(t, t.TempDir())
	b := []byte("sized")
	desc := descOf(b)
	w := openWriter(t, cs, "s", desc)
	write(t, w, b)
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	desc.Size++
	if _, err := cs.ReaderAt(ctx, desc); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("ReaderAt with a wrong size = %v, want FailedPrecondition", err)
	}
}

func TestMalformedDigestIsInvalidArgument(t *testing.T) {
	ctx := context.Background()
	cs := newTestStore(t, t.TempDir())
	for _, d := range []digest.Digest{"sha256:short", "nope", "sha256:../../../etc/passwd"} {
		if _, err := cs.Info(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q) = %v, want InvalidArgument", d, err)
		}
		if err := cs.Delete(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q) = %v, want InvalidArgument", d, err)
		}
	}
}

// TestLeftoversAreNotContent guards "temporary files never look like
// blobs": strays under blobs/ and half-made ingests are never listed, and
// NewStore removes the temporaries a crash left.
func TestLeftoversAreNotContent(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cs := newTestStore(t, root)
	blobs := filepath.Join(root, "blobs", "sha256")
	if err := os.MkdirAll(blobs, dirMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobs, "not-a-digest"), []byte("x"), fileMode); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "ingest", tmpPrefix+"crashed")
	if err := os.MkdirAll(tmp, dirMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, refFile), []byte("ghost"), fileMode); err != nil {
		t.Fatal(err)
	}
	// A directory missing its data file, as if torn: not an ingest either.
	torn := filepath.Join(root, "ingest", "torn")
	if err := os.MkdirAll(torn, dirMode); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(torn, refFile), []byte("torn"), fileMode)

	if err := cs.Walk(ctx, func(info content.Info) error {
		t.Errorf("Walk visits %s", info.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sts, err := cs.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ListStatuses = %+v, %v; want none", sts, err)
	}
	newTestStore(t, root)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("NewStore left %s: %v", tmp, err)
	}
}

// TestResumeReadOnlyData guards a crash between Commit's chmod and its
// link: the data file is read-only, and the ingest must still resume.
//
// Root ignores file modes, and the tests run as root: as root, the test
// runs itself again as nobody.
func TestResumeReadOnlyData(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t)
		return
	}
	root := t.TempDir()
	cs := newTestStore(t, root)
	w := openWriter(t, cs, "ro", ocispec.Descriptor{})
	write(t, w, []byte("abc"))
	w.Close()
	sum := sha256.Sum256([]byte("ro"))
	if err := os.Chmod(filepath.Join(root, "ingest", hex.EncodeToString(sum[:]), dataFile), blobMode); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, cs, "ro", ocispec.Descriptor{})
	write(t, w, []byte("def"))
	if err := w.Commit(context.Background(), 6, digest.SHA256.FromString("abcdef")); err != nil {
		t.Fatal(err)
	}
}

// runAsNobody runs t's test alone in a copy of the test binary as the user
// nobody (65534), and fails t if it does not pass there.
func runAsNobody(t *testing.T) {
	t.Helper()
	const nobody = 65534
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The binary's own directory is private to root: a copy nobody can run.
	dir, err := os.MkdirTemp("", "as-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s as nobody: %v\n%s", t.Name(), err, out)
	}
	t.Logf("ran as nobody:\n%s", out)
}
