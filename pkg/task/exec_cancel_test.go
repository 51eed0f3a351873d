package task_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// TestExecStartGivenUpLeavesNoProcess: a runtime slow to exec (here a
// wrapper that waits a second before runc's exec) outlasts its caller's
// deadline. The runtime runs to its end, but the caller was told the
// start failed, so the process must not run on: TestExecSyncTimeouts,
// 50 ExecSync at a time on a loaded host, found exec'd sleeps alive in
// the container long after every call had returned.
func TestExecStartGivenUpLeavesNoProcess(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc is not installed")
	}
	wrapper := filepath.Join(t.TempDir(), "slow-exec-runc")
	script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *\" exec \"*) sleep 1;; esac\nexec %s \"$@\"\n", runc)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ctx := nsCtx()
	tk, _ := e.create("g1", wrapper, "slowexec", "sleep", "1000")
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := tk.Exec(ctx, "e1", execSpec("sleep", "1000"), task.IO{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Start(sctx)
	cancel()
	if err == nil {
		t.Fatal("a start whose caller gave up before the runtime's exec ended succeeded")
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	exit, err := p.Wait(wctx)
	if err != nil {
		t.Fatalf("the exec whose start was given up still runs: %v", err)
	}
	if exit.Status != 128+9 {
		t.Errorf("exec exit %d, want killed (137)", exit.Status)
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	remove(t, tk)
}
