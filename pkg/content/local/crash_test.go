package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// crashRootEnv, when set, turns TestCrashChild into the process that gets
// killed: it writes an endless deterministic stream into the ingest "crash"
// of the store at that root.
const crashRootEnv = "CONTENT_LOCAL_CRASH_ROOT"

func crashStream() io.Reader {
	return rand.NewChaCha8([32]byte{'c', 'r', 'a', 's', 'h'})
}

func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashRootEnv)
	if root == "" {
		t.Skip("run by TestKilledMidIngestResumes")
	}
	cs, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.Writer(context.Background(), content.WithRef("crash"))
	if err != nil {
		t.Fatal(err)
	}
	src := crashStream()
	buf := make([]byte, 64<<10+3) // odd, so the kill lands mid-chunk too
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		src.Read(buf)
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKilledMidIngestResumes kills a process with SIGKILL while it writes an
// ingest, then resumes the ingest in this process from the data file's size
// and commits it: what was written before the kill is exactly a prefix of
// the stream, and the resumed digest state agrees with it.
func TestKilledMidIngestResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	ctx := context.Background()
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashRootEnv+"="+root)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("crash"))
	data := filepath.Join(root, "ingest", hex.EncodeToString(sum[:]), dataFile)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(data); err == nil && fi.Size() > 3<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child wrote less than 3 MiB in 30s")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cs := newTestStore(t, root)
	st, err := cs.Status(ctx, "crash")
	if err != nil {
		t.Fatalf("Status after the kill: %v", err)
	}
	fi, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.Offset != fi.Size() {
		t.Fatalf("Status offset %d, data file %d bytes", st.Offset, fi.Size())
	}
	total := st.Offset + 1<<20 + 1
	want := make([]byte, total)
	crashStream().Read(want)
	desc := ocispec.Descriptor{Digest: digest.SHA256.FromBytes(want), Size: total}

	w := openWriter(t, cs, "crash", ocispec.Descriptor{})
	if got, exp := w.Digest(), digest.SHA256.FromBytes(want[:st.Offset]); got != exp {
		t.Fatalf("resumed digest %s, want the stream prefix's %s", got, exp)
	}
	write(t, w, want[st.Offset:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("Commit after resuming a killed ingest: %v", err)
	}
	got, err := content.ReadBlob(ctx, cs, desc)
	if err != nil || digest.SHA256.FromBytes(got) != desc.Digest {
		t.Fatalf("ReadBlob: %d bytes, %v", len(got), err)
	}
	t.Logf("killed at %d bytes, resumed and committed %d", st.Offset, total)
}
