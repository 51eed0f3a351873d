package task_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

func execSpec(args ...string) *specs.Process {
	return &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}}
}

func TestExecPsKill(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, _ := e.create("g1", rt, "c1", "sleep", "1000")
		initPid, err := tk.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		execCapturesOutput(t, tk)
		execShowsInPsAndDies(t, tk, initPid)
		killGivenPid(t, tk, initPid)
		remove(t, tk)
		want2 := []string{"create/", "start/", "exec-added/e1", "exec-started/e1", "exit/e1", "delete/e1"}
		if got := e.rec.of("c1"); len(got) < len(want2) || !slices.Equal(got[:len(want2)], want2) {
			t.Errorf("events %v, want them to begin %v", got, want2)
		}
	})
}

// execCapturesOutput: output captured with a cap, stdin fed, the exit
// code reported.
func execCapturesOutput(t *testing.T, tk *task.Task) {
	ctx := waitCtx(t)
	out := &task.LimitedBuffer{Max: 10}
	var errOut bytes.Buffer
	p, err := tk.Exec(ctx, "e1", execSpec("sh", "-c", "cat; echo to-stderr >&2; exit 7"), task.IO{
		Stdin: strings.NewReader("0123456789abcdef"), Stdout: out, Stderr: &errOut,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exit, err := p.Wait(ctx)
	if err != nil || exit.Status != 7 {
		t.Fatalf("exec exit %+v, %v", exit, err)
	}
	if got := string(out.Bytes()); got != "0123456789" || out.Truncated() != 6 {
		t.Errorf("stdout %q (+%d), want the first 10 bytes of 16", got, out.Truncated())
	}
	if errOut.String() != "to-stderr\n" {
		t.Errorf("stderr %q", errOut.String())
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// execShowsInPsAndDies: a long-running exec shows in ps under its exec ID;
// killing it by exec ID ends it, not the container.
func execShowsInPsAndDies(t *testing.T, tk *task.Task, initPid uint32) {
	ctx := waitCtx(t)
	p2, err := tk.Exec(ctx, "e2", execSpec("sleep", "1000"), task.IO{})
	if err != nil {
		t.Fatal(err)
	}
	execPid, err := p2.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := tk.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []task.ProcessInfo{{Pid: initPid}, {Pid: execPid, ExecID: "e2"}}
	slices.SortFunc(want, func(a, b task.ProcessInfo) int { return int(a.Pid) - int(b.Pid) })
	if !slices.Equal(procs, want) {
		t.Errorf("pids %+v, want %+v", procs, want)
	}
	if err := p2.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit, err := p2.Wait(ctx); err != nil || exit.Status != 137 {
		t.Fatalf("exec e2 exit %+v, %v", exit, err)
	}
	if _, err := p2.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// killGivenPid signals a given pid of the container: a background child.
func killGivenPid(t *testing.T, tk *task.Task, initPid uint32) {
	ctx := waitCtx(t)
	p3, err := tk.Exec(ctx, "e3", execSpec("sh", "-c", "sleep 1000 & wait $!"), task.IO{Stdout: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	shPid, err := p3.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var child uint32
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); {
		procs, _ := tk.Pids(ctx)
		for _, pi := range procs {
			if pi.Pid != initPid && pi.Pid != shPid {
				child = pi.Pid
			}
		}
	}
	if child == 0 {
		t.Fatal("the exec's child never showed in ps")
	}
	if err := tk.Kill(ctx, syscall.SIGKILL, task.KillOpts{Pid: child}); err != nil {
		t.Fatal(err)
	}
	// The shell's wait returns the child's status (128+9).
	if exit, err := p3.Wait(ctx); err != nil || exit.Status != 137 {
		t.Fatalf("exec e3 exit %+v, %v", exit, err)
	}
	if err := tk.Kill(ctx, syscall.SIGKILL, task.KillOpts{Pid: 1}); !errdefs.IsNotFound(err) {
		t.Errorf("kill of a pid outside the container: %v, want NotFound", err)
	}
	if st, err := tk.State(ctx); err != nil || st.Status != shimapi.StatusRunning {
		t.Errorf("container after the exec kills: %+v, %v", st, err)
	}
}

func TestPauseResume(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, logPath := e.create("g1", rt, "c1", "sh", "-c", "while true; do echo tick; sleep 0.05; done")
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := tk.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if st, _ := tk.State(ctx); st.Status != shimapi.StatusPaused {
			t.Fatalf("state %s, want paused", st.Status)
		}
		if err := tk.Pause(ctx); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("pause of a paused container: %v, want FailedPrecondition", err)
		}
		if _, err := tk.Exec(ctx, "e1", execSpec("true"), task.IO{}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exec in a paused container: %v, want FailedPrecondition", err)
		}
		time.Sleep(100 * time.Millisecond)
		n := len(readLog(t, logPath))
		time.Sleep(300 * time.Millisecond)
		if m := len(readLog(t, logPath)); m != n {
			t.Errorf("the paused container wrote %d lines", m-n)
		}
		if err := tk.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if m := len(readLog(t, logPath)); m <= n {
			t.Errorf("the resumed container wrote nothing")
		}
		if err := tk.Resume(ctx); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("resume of a running container: %v, want FailedPrecondition", err)
		}
		remove(t, tk)
		e.rec.waitFor(t, shimapi.TopicPaused, "c1", "")
		e.rec.waitFor(t, shimapi.TopicResumed, "c1", "")
	})
}

func TestStats(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, _ := e.create("g1", rt, "c1", "sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=8; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000")
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		var st *task.Stats
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			s, err := tk.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st = s; s.Memory.Usage >= 8<<20 && s.CPU.UsageNanos > 0 && s.Pids.Current >= 1 {
				break
			}
		}
		if st.Memory.Usage < 8<<20 || st.Memory.WorkingSet < 8<<20 || st.CPU.UsageNanos == 0 || st.Pids.Current < 1 {
			t.Errorf("stats %+v: want 8 MiB of shm, CPU time and a process", st)
		}
		if err := tk.Update(ctx, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}}); err != nil {
			t.Fatal(err)
		}
		if s, err := tk.Stats(ctx); err != nil || s.Memory.Limit != 64<<20 {
			t.Errorf("limit after update: %+v, %v", s, err)
		}
		remove(t, tk)
	})
}

func ptr[T any](v T) *T { return &v }

// TestCloseStdin: a process reading a stdin the caller never closes ends
// when CloseStdin is called.
func TestCloseStdin(t *testing.T) {
	rt := tasktest.Runtimes(t)[0]
	e := newEnv(t)
	ctx := waitCtx(t)
	tk, _ := e.create("g1", rt, "c1", "sleep", "1000")
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stdinR, stdinW, _ := os.Pipe()
	defer stdinW.Close()
	var out bytes.Buffer
	p, err := tk.Exec(ctx, "e1", execSpec("sh", "-c", "cat; echo eof"), task.IO{Stdin: stdinR, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stdinW.WriteString("data\n")
	time.Sleep(100 * time.Millisecond)
	if err := p.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	if exit, err := p.Wait(ctx); err != nil || exit.Status != 0 || out.String() != "data\neof\n" {
		t.Fatalf("exit %+v, %v, output %q", exit, err, out.String())
	}
	remove(t, tk)
}

// TestExecStartGivenUpMidRuntime: the caller of an exec's Start gives up
// (ExecSync's timeout) while the runtime is still at work on a loaded
// machine. The runtime is not killed half-way, which left the process
// running in the container with nothing tracking it; and the caller was
// told the start failed, so the shim kills the process once the runtime
// is done: its exit comes without the caller's kill (TestExecSyncTimeouts
// found exec'd sleeps alive after every call had returned).
func TestExecStartGivenUpMidRuntime(t *testing.T) {
	real, err := exec.LookPath("runc")
	if err != nil {
		testenv.Missing(t, "runc: %v", err)
	}
	slow := filepath.Join(t.TempDir(), "slow-runc")
	script := "#!/bin/sh\n" + real + " \"$@\"\nrc=$?\nfor a; do [ \"$a\" = exec ] && sleep 1; done\nexit $rc\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ctx := waitCtx(t)
	tk, _ := e.create("g1", slow, "c1", "sleep", "1000")
	initPid, err := tk.Start(ctx)
	if err != nil {
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
		t.Fatal("start returned before the slow runtime did")
	}
	if exit, err := p.Wait(ctx); err != nil || exit.Status != 137 {
		t.Fatalf("exec exit %+v, %v", exit, err)
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if procs, err := tk.Pids(ctx); err != nil || len(procs) != 1 || procs[0].Pid != initPid {
		t.Errorf("processes in the container %+v, %v: want only its init", procs, err)
	}
	remove(t, tk)
}
