package fault

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
	"github.com/cri-runtime/cri-runtime/internal/testenv"
)

// criLine is a well-formed CRI log line.
var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) [PF] `)

// The daemon's root and the pods' logs on small filesystems: a container
// writes until its disk is full, another logs as fast as it can. The
// daemon answers throughout, its database stays consistent, and every
// line of the log files is a whole CRI line.
func TestFullDisk(t *testing.T) {
	root := testenv.SmallFS(t, 160)
	logs := testenv.SmallFS(t, 8)
	n := crinode.New(t, "", crinode.WithRoot(root+"/root"), crinode.WithLogDir(logs))
	ctx := context.Background()
	_, writer := n.StartPod(ctx, "filler", "sh", "-c", "dd if=/dev/zero of=/big bs=1M; echo dd-done; sleep 3600")
	_, logger := n.StartPod(ctx, "logger", "sh", "-c", "while true; do echo 'a line of the logger, at full speed, until the disk is full'; done")
	deadline := time.Now().Add(60 * time.Second)
	full := false
	for time.Now().Before(deadline) {
		// The daemon answers while the disks fill.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.RT.ListContainers(cctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("the daemon does not answer with a full disk: %v", err)
		}
		out, _, _ := n.RT.ExecSync(ctx, writer, []string{"sh", "-c", "test -e /big && df -k / | tail -1"}, 10*time.Second)
		if len(out) > 0 && regexp.MustCompile(`\s100%`).Match(out) {
			full = true
			break
		}
		time.Sleep(time.Second)
	}
	if !full {
		t.Fatal("the writer's disk never filled")
	}
	time.Sleep(2 * time.Second) // the logger keeps hitting ENOSPC
	for _, id := range []string{writer, logger} {
		st, err := n.RT.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s: %v", id, st.GetStatus().GetState())
		}
		checkLog(t, st.GetStatus().GetLogPath())
	}
	removeAll(t, n)
	n.Stop()
	checkOffline(t, n.Root())
}

// checkLog fails t on a line of path that is not a whole CRI line. The
// log is live: the bytes after its last newline are a write in progress
// (on a full disk, one the writer is about to cut back), which a reader
// that follows a log, as kubelet's, leaves for later; they are not
// checked.
func checkLog(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(b, []byte("\n"))
	tail := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	for i, line := range lines {
		if !criLine.Match(line) {
			t.Errorf("%s: line %d of %d is not a CRI log line: %.120q", path, i+1, len(lines), line)
			return
		}
	}
	t.Logf("%s: %d lines, all whole; %d bytes in progress after them", path, len(lines), len(tail))
}
