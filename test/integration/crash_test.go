package integration

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
)

const crashSize = 100 << 20

// payload returns the deterministic bytes of the crash test.
func payload() io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], 42)
	return io.LimitReader(rand.NewChaCha8(key), crashSize)
}

// activeOffset returns the offset and total of ref in `content active`,
// -1 if ref is not listed.
func activeOffset(t *testing.T, d *daemon, ref string) (offset, total int64) {
	t.Helper()
	var list []struct {
		Ref           string
		Offset, Total int64
	}
	if err := json.Unmarshal([]byte(d.ok(nil, "default", "-o", "json", "content", "active")), &list); err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Ref == ref {
			return st.Offset, st.Total
		}
	}
	return -1, 0
}

// TestIngestSurvivesKill9 kills the daemon in the middle of a 100 MB
// ingest, restarts it, and resumes the ingest from where it stopped.
func TestIngestSurvivesKill9(t *testing.T) {
	h := sha256.New()
	io.Copy(h, payload())
	want := digest.NewDigest(digest.SHA256, h)
	ingestArgs := []string{"--address", "", "-n", "default", "content", "ingest", "--ref", "big",
		"--expected-size", strconv.Itoa(crashSize), "--expected-digest", want.String(),
		"--label", "cri-runtime.io/gc.root=crash-test"}

	d := newDaemon(t)
	d.start()
	ingestArgs[1] = d.address

	// The first ingest gets half the payload and then waits on its stdin.
	cli := exec.Command(criRuntime, ingestArgs...)
	stdin, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cliErr syncBuffer
	cli.Stderr = &cliErr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	fed := make(chan error, 1)
	go func() {
		_, err := io.CopyN(stdin, payload(), crashSize/2)
		fed <- err
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Midway: well into the data, well before the end of what was fed.
		if off, _ := activeOffset(t, d, "big"); off >= 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingest never showed progress; cli: %s", cliErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := d.signal(syscall.SIGKILL); code != -1 {
		t.Fatalf("kill -9 gave exit code %d", code)
	}
	stdin.Close()
	<-fed
	if err := cli.Wait(); err == nil {
		t.Fatal("the interrupted ingest succeeded")
	}
	t.Logf("interrupted ingest: %s", strings.TrimSpace(cliErr.String()))

	// After a restart (over the stale socket) the ingest is there.
	d.start()
	offset, total := activeOffset(t, d, "big")
	if offset <= 0 || offset > crashSize/2 || total != crashSize {
		t.Fatalf("after restart: ingest big at %d of %d, want (0, %d] of %d\n%s", offset, total, crashSize/2, crashSize, d.ok(nil, "default", "content", "active"))
	}
	t.Logf("resuming at %d", offset)

	// The resume skips what is there and ends with the verified digest.
	resume := exec.Command(criRuntime, ingestArgs...)
	resume.Stdin = payload()
	out, err := resume.Output()
	if err != nil {
		t.Fatalf("resume: %v: %s", err, exitStderr(err))
	}
	if got := strings.TrimSpace(string(out)); got != want.String() {
		t.Fatalf("resume printed %q, want %s", got, want)
	}
	if off, _ := activeOffset(t, d, "big"); off != -1 {
		t.Fatalf("ingest still active at %d after commit", off)
	}
	if ls := d.ok(nil, "default", "content", "ls", "-q"); !strings.Contains(ls, want.String()) {
		t.Fatalf("content ls -q:\n%s", ls)
	}
	d.stop()

	// The database the daemon left is consistent.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := local.NewStore(filepath.Join(d.root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := native.NewSnapshotter(filepath.Join(d.root, "snapshots", "native"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	db, err := meta.Open(ctx, filepath.Join(d.root, "meta.db"), cs, map[string]snapshot.Snapshotter{"native": sn})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("meta Check after the crash and the resume: %v", err)
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestSIGTERMDuringIngest guards a graceful stop against an ingest in
// progress: the daemon stops at once rather than after its 10 s shutdown
// timeout, the CLI says the daemon is stopping, as Unavailable, rather
// than print a bare transport error, and the ingest is kept for a resume.
func TestSIGTERMDuringIngest(t *testing.T) {
	d := newDaemon(t)
	d.start()
	d.ok(nil, "default", "leases", "create", "--id", "ingest")
	cli := exec.Command(criRuntime, "--address", d.address, "--lease", "ingest", "content", "ingest", "--ref", "stopped")
	stdin, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cliErr syncBuffer
	cli.Stderr = &cliErr
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // a slow producer, as a download piped into the CLI
		chunk := make([]byte, 64<<10)
		for {
			if _, err := stdin.Write(chunk); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer stdin.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if off, _ := activeOffset(t, d, "stopped"); off >= 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingest never showed progress; cli: %s", cliErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if code := d.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("daemon exit code %d after SIGTERM", code)
	}
	stopped := time.Since(start)
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	select {
	case err = <-cliDone:
	case <-time.After(10 * time.Second):
		cli.Process.Kill()
		t.Fatalf("the CLI still runs 10 s after the daemon stopped")
	}
	took := time.Since(start)
	t.Logf("daemon stopped in %v, CLI ended in %v: %s", stopped, took, strings.TrimSpace(cliErr.String()))
	if stopped > 3*time.Second {
		t.Errorf("daemon took %v to stop with an ingest in progress, want at once", stopped)
	}
	msg := cliErr.String()
	if err == nil || !strings.HasPrefix(msg, "cri-runtime: ") || !strings.Contains(msg, "daemon") || !strings.Contains(msg, "unavailable") ||
		strings.Contains(msg, "rpc error") || strings.Contains(msg, "transport") {
		t.Errorf("CLI: %v, stderr %q: want a failure saying the daemon stopped, as unavailable", err, msg)
	}
	d.start()
	defer d.stop()
	if off, _ := activeOffset(t, d, "stopped"); off < 1<<20 {
		t.Errorf("ingest after the restart at %d, want it kept", off)
	}
}

// TestCLIFailsFastWithoutDaemon guards the CLI against hanging when the
// daemon is stopped (SIGSTOP: the kernel still accepts its connections) or
// gone: it fails within its connect timeout, naming the socket.
func TestCLIFailsFastWithoutDaemon(t *testing.T) {
	d := newDaemon(t)
	d.start()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := d.fails(nil, "default", []string{"namespaces", "ls"}, d.address, "did not answer", "unavailable")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("against a stopped daemon the CLI took %v (%s)", took, r.stderr)
	}
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	d.ok(nil, "default", "namespaces", "ls")
	d.stop()
	start = time.Now()
	d.fails(nil, "default", []string{"namespaces", "ls"}, d.address, "unavailable")
	// Refused at once; the bound leaves room for a loaded machine, far
	// below the minute a CLI that waited for its timeout would take.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("without a daemon the CLI took %v", took)
	}
}
