package task_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

func TestLogLongLinesSplit(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		logPath := filepath.Join(t.TempDir(), "c1.log")
		script := "head -c 250 /dev/zero | tr '\\0' a; echo; head -c 100 /dev/zero | tr '\\0' b; echo; echo short"
		tk, err := e.m.Create(ctx, "g1", task.CreateOpts{
			ID: "c1", Runtime: rt, Spec: tasktest.SpecJSON(t, tasktest.Spec("c1", "sh", "-c", script)),
			Rootfs: tasktest.OverlayRootfs(t), IO: task.IO{LogPath: logPath, LogLineSize: 100},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		a, b := strings.Repeat("a", 100), strings.Repeat("b", 100)
		want := []string{"stdout P " + a, "stdout P " + a, "stdout F " + a[:50], "stdout F " + b, "stdout F short"}
		if got := logContent(t, logPath); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		remove(t, tk)
	})
}

func TestLogRotation(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, logPath := e.create("g1", rt, "c1", "sh", "-c", "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i; sleep 0.02; done")
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := os.Rename(logPath, logPath+".1"); err != nil {
			t.Fatal(err)
		}
		if err := tk.ReopenLog(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		old, cur := logContent(t, logPath+".1"), logContent(t, logPath)
		if len(old) == 0 || len(cur) == 0 {
			t.Fatalf("rotated %d lines, current %d: want both", len(old), len(cur))
		}
		for i, line := range append(old, cur...) {
			if line != "stdout F "+strconv.Itoa(i+1) {
				t.Fatalf("line %d is %q: lines lost or reordered across the rotation", i+1, line)
			}
		}
		remove(t, tk)
	})
}

func TestTerminal(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		spec := tasktest.Spec("c1", "sh", "-c", "stty size; read line; echo got:$line; tty")
		spec.Process.Terminal = true
		var out bytes.Buffer
		stdinR, stdinW, _ := os.Pipe()
		defer stdinW.Close()
		logPath := filepath.Join(t.TempDir(), "c1.log")
		tk, err := e.m.Create(ctx, "g1", task.CreateOpts{
			ID: "c1", Runtime: rt, Spec: tasktest.SpecJSON(t, spec), Rootfs: tasktest.OverlayRootfs(t),
			IO: task.IO{Terminal: true, Stdin: stdinR, Stdout: &out, LogPath: logPath},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Resize(ctx, 100, 30); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(stdinW, "hello")
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		got := strings.ReplaceAll(out.String(), "\r", "")
		for _, want := range []string{"30 100\n", "got:hello\n", "/dev/pts/0\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("terminal output %q lacks %q", got, want)
			}
		}
		if log := strings.Join(logContent(t, logPath), "\n"); !strings.Contains(log, "stdout F got:hello") {
			t.Errorf("log %q lacks the terminal's output", log)
		}
		remove(t, tk)
	})
}

func TestExecTerminal(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, _ := e.create("g1", rt, "c1", "sleep", "1000")
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		spec := execSpec("sh", "-c", "read line; echo got:$line; tty")
		spec.Terminal = true
		var out bytes.Buffer
		stdinR, stdinW, _ := os.Pipe()
		defer stdinW.Close()
		p, err := tk.Exec(ctx, "e1", spec, task.IO{Terminal: true, Stdin: stdinR, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Resize(ctx, 80, 24); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(stdinW, "hi")
		if exit, err := p.Wait(ctx); err != nil || exit.Status != 0 {
			t.Fatalf("exit %+v, %v", exit, err)
		}
		got := strings.ReplaceAll(out.String(), "\r", "")
		if !strings.Contains(got, "got:hi\n") || !strings.Contains(got, "/dev/pts/") {
			t.Errorf("terminal output %q", got)
		}
		remove(t, tk)
	})
}

func TestOOMKilled(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		// tmpfs pages are charged to the writer's memory cgroup and cannot
		// be reclaimed without swap: 64 MiB into /dev/shm under a 16 MiB
		// limit is an OOM kill.
		spec := tasktest.Spec("c1", "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=64")
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(16 << 20))}
		tk, err := e.m.Create(ctx, "g1", task.CreateOpts{
			ID: "c1", Runtime: rt, Spec: tasktest.SpecJSON(t, spec), Rootfs: tasktest.OverlayRootfs(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		exit, err := tk.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if exit.Status != 137 || exit.Reason != shimapi.ReasonOOMKilled {
			t.Errorf("exit %+v, want 137 OOMKilled", exit)
		}
		e.rec.waitFor(t, shimapi.TopicOOM, "c1", "")
		ev := e.rec.waitFor(t, shimapi.TopicExit, "c1", "")
		if ev.Exit == nil || ev.Exit.Reason != shimapi.ReasonOOMKilled {
			t.Errorf("exit event %+v, want reason OOMKilled", ev.Exit)
		}
		remove(t, tk)
	})
}
