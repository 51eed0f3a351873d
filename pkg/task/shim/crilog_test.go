package shim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"golang.org/x/sys/unix"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestCRILogFormatAndSplit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := openCRILog(path, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	l.push(streamStdout, []byte("ab"), at)
	l.push(streamStderr, []byte("err\n"), at)
	l.push(streamStdout, []byte("cd\nabcd\nabcdefghij"), at) // "abcd" fits, exactly 4
	l.push(streamStdout, []byte("\n\n"), at)
	l.push(streamStderr, []byte("tail"), at)
	l.endStream(streamStderr)
	l.close()
	want := []string{
		"2026-01-02T03:04:05.0000006Z stderr F err",
		"2026-01-02T03:04:05.0000006Z stdout F abcd",
		"2026-01-02T03:04:05.0000006Z stdout F abcd",
		"2026-01-02T03:04:05.0000006Z stdout P abcd",
		"2026-01-02T03:04:05.0000006Z stdout P efgh",
		"2026-01-02T03:04:05.0000006Z stdout F ij",
		"2026-01-02T03:04:05.0000006Z stdout F ",
	}
	got := readLines(t, path)
	// endStream stamps with the time of the EOF.
	if len(got) != len(want)+1 || !strings.HasSuffix(got[len(got)-1], " stderr F tail") {
		t.Fatalf("log:\n%s", strings.Join(got, "\n"))
	}
	if strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCRILogDropsRatherThanBlocks writes to a log that nobody drains (a
// FIFO stands for a stalled disk): push never waits, the output beyond
// the buffer is dropped, and a marker says how much, where it happened.
func TestCRILogDropsRatherThanBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const limit = 32 << 10
	l, err := openCRILog(path, 0, limit)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000) + "\n"
	const n = 1000 // ~1 MB: far more than the FIFO (64 KiB) and the buffer hold
	start := time.Now()
	for i := 0; i < n; i++ {
		l.push(streamStdout, []byte(fmt.Sprintf("%04d%s", i, line)), time.Now())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pushing took %v: the writer blocked the pushes", d)
	}
	l.push(streamStdout, []byte("last\n"), time.Now())
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(fifoReader{r})
		done <- b
	}()
	l.close()
	out := <-done

	marker := regexp.MustCompile(`stdout F \[cri-runtime-shim: (\d+) bytes in (\d+) lines of output dropped`)
	kept, dropped, droppedLines := 0, 0, 0
	for _, ln := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if m := marker.FindStringSubmatch(ln); m != nil {
			b, _ := strconv.Atoi(m[1])
			c, _ := strconv.Atoi(m[2])
			dropped, droppedLines = dropped+b, droppedLines+c
			continue
		}
		if strings.HasSuffix(ln, " stdout F last") {
			continue
		}
		kept++
	}
	if droppedLines == 0 || kept+droppedLines != n || dropped != droppedLines*1004 {
		t.Errorf("kept %d lines, dropped %d lines (%d bytes): want %d in all, some dropped", kept, droppedLines, dropped, n)
	}
	if !bytes.HasSuffix(out, []byte(" stdout F last\n")) {
		t.Error("the line after the drop is missing")
	}
}

// fifoReader reads a FIFO until its writer closes (a read of 0 bytes).
type fifoReader struct{ f *os.File }

func (r fifoReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if err == nil && n == 0 {
			return 0, io.EOF
		}
		return n, err
	}
}

func TestCRILogReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := openCRILog(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.push(streamStdout, []byte("one\n"), time.Now())
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.push(streamStdout, []byte("two\n"), time.Now())
	l.close()
	if old := readLines(t, path+".1"); len(old) != 1 || !strings.HasSuffix(old[0], " F one") {
		t.Errorf("rotated file: %q", old)
	}
	if cur := readLines(t, path); len(cur) != 1 || !strings.HasSuffix(cur[0], " F two") {
		t.Errorf("new file: %q", cur)
	}
	if err := l.reopen(); err == nil {
		t.Error("reopen of a closed log succeeded")
	}
}

// TestCRILogFullDiskKeepsWholeLines fills a small tmpfs with a log: the
// lines that do not fit are lost, and no line is left cut in half.
func TestCRILogFullDiskKeepsWholeLines(t *testing.T) {
	testenv.NeedRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	l, err := openCRILog(filepath.Join(dir, "log"), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		l.push(streamStdout, []byte(fmt.Sprintf("%04d %s\n", i, strings.Repeat("y", 100+i%37))), time.Now())
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // batches of many sizes
		}
	}
	l.close()
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32<<10 {
		t.Fatalf("%d bytes written, want the disk filled", len(b))
	}
	whole := regexp.MustCompile(`^\S+ stdout F \d{4} y+$`)
	if !bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("the log ends in half a line: %q", b[max(0, len(b)-80):])
	}
	for i, ln := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !whole.MatchString(ln) {
			t.Fatalf("line %d is not whole: %q", i+1, ln)
		}
	}
}
