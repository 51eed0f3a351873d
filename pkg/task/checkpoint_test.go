package task_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// needCRIU skips unless `criu check` passes on this kernel.
func needCRIU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("criu"); err != nil {
		t.Skip("criu not installed (apt-get install criu)")
	}
	if out, err := exec.Command("criu", "check").CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Skipf("criu does not work on this kernel: `criu check`: %s", lines[0])
	}
}

func TestCheckpointRestore(t *testing.T) {
	tasktest.NeedRoot(t)
	needCRIU(t)
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, logPath := e.create("g1", rt, "c1", "sh", "-c", ticker)
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitForLines(t, logPath, 5)
		image := filepath.Join(t.TempDir(), "image")
		if err := tk.Checkpoint(ctx, task.CheckpointOpts{ImagePath: image, Exit: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		n := logLines(logPath)
		restored, err := e.m.Create(ctx, "g1", task.CreateOpts{
			ID: "c1", Runtime: rt, Spec: tasktest.SpecJSON(t, tasktest.Spec("c1", "sh", "-c", ticker)),
			Rootfs: tasktest.OverlayRootfs(t), IO: task.IO{LogPath: logPath}, Checkpoint: image,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := restored.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitForLines(t, logPath, n+5)
		if st, _ := restored.State(ctx); st.Status != shimapi.StatusRunning {
			t.Errorf("restored: %+v", st)
		}
		remove(t, restored)
	})
}
