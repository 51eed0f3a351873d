package task_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// The helper is this test binary run as a stand-in daemon: it starts
// containers through its own Manager, says "ready", and waits to be
// killed. The test then kills it with SIGKILL, as a crashing daemon.
const helperEnv = "CRI_RUNTIME_TASK_TEST_HELPER"

// helperJob is what the helper is asked to start.
type helperJob struct {
	StateDir, ShimBinary, Rootfs, WorkDir, Runtime string
	Containers                                     []helperContainer
}

type helperContainer struct {
	ID, Group string
	Args      []string
}

func runHelper() int {
	var job helperJob
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &job); err != nil {
		fmt.Println("bad job:", err)
		return 2
	}
	m, err := task.NewManager(task.Config{StateDir: job.StateDir, ShimBinary: job.ShimBinary})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ctx := nsCtx()
	for _, c := range job.Containers {
		dir := filepath.Join(job.WorkDir, c.ID)
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		os.MkdirAll(upper, 0o755)
		os.MkdirAll(work, 0o755)
		spec, _ := json.Marshal(tasktest.Spec(c.ID, c.Args...))
		tk, err := m.Create(ctx, c.Group, task.CreateOpts{
			ID: c.ID, Runtime: job.Runtime, Spec: spec,
			Rootfs: []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + job.Rootfs, "upperdir=" + upper, "workdir=" + work}}},
			IO: task.IO{LogPath: filepath.Join(job.WorkDir, c.ID+".log")},
		})
		if err == nil {
			_, err = tk.Start(ctx)
		}
		if err != nil {
			fmt.Println(err)
			return 1
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
	return 0
}

// startHelper runs the helper daemon, waits for it to be ready, and kills
// it with SIGKILL.
func startAndKillHelper(t *testing.T, job helperJob) {
	t.Helper()
	b, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper daemon: %s", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

func helperBase(t *testing.T, e *env, rt string) helperJob {
	return helperJob{
		StateDir: e.state, ShimBinary: tasktest.ShimBinary(t), Rootfs: tasktest.Rootfs(t),
		WorkDir: t.TempDir(), Runtime: rt,
	}
}

func logLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func waitForLines(t *testing.T, path string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for logLines(path) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%s has %d lines, want %d", path, logLines(path), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
