package task_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

func TestRunExitCodes(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := nsCtx()
		for _, c := range []struct {
			id   string
			args []string
			want uint32
		}{
			{"ok", []string{"true"}, 0},
			{"three", []string{"sh", "-c", "exit 3"}, 3},
			// Pid 1 of a pid namespace ignores what it has no handler for:
			// SIGKILL from outside is what ends it.
			{"killed", []string{"sleep", "100"}, 128 + 9},
		} {
			tk, logPath := e.create("g1", rt, c.id, c.args...)
			before := time.Now()
			pid, err := tk.Start(ctx)
			if err != nil || pid == 0 {
				t.Fatalf("start %s: pid %d, %v", c.id, pid, err)
			}
			if c.id == "killed" {
				if err := tk.Kill(ctx, syscall.SIGKILL, task.KillOpts{}); err != nil {
					t.Fatal(err)
				}
			}
			exit, err := tk.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if exit.Status != c.want || exit.At.Before(before) || exit.At.After(time.Now()) || exit.Reason != "" {
				t.Errorf("%s: exit %+v, want status %d at a time of the run", c.id, exit, c.want)
			}
			st, err := tk.State(ctx)
			if err != nil || st.Status != shimapi.StatusStopped || st.Exit == nil || st.Exit.Status != c.want {
				t.Errorf("%s: state %+v, %v", c.id, st, err)
			}
			del, err := tk.Delete(ctx)
			if err != nil || del.Status != c.want {
				t.Errorf("%s: delete: %+v, %v", c.id, del, err)
			}
			if !cgroupGone(c.id) {
				t.Errorf("%s: cgroup left after delete", c.id)
			}
			if got := readLog(t, logPath); len(got) != 0 {
				t.Errorf("%s: unexpected output %q", c.id, got)
			}
			e.rec.waitFor(t, shimapi.TopicDelete, c.id, "")
			want := []string{"create/", "start/", "exit/", "delete/"}
			if got := e.rec.of(c.id); !slices.Equal(got, want) {
				t.Errorf("%s: events %v, want %v", c.id, got, want)
			}
		}
	})
}

func TestOutputToCRILog(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := nsCtx()
		tk, logPath := e.create("g1", rt, "echo", "sh", "-c", "echo out1; echo err1 >&2; printf 'no newline'")
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		got := logContent(t, logPath)
		slices.Sort(got)
		want := []string{"stderr F err1", "stdout F no newline", "stdout F out1"}
		if !slices.Equal(got, want) {
			t.Errorf("log %q, want %q", got, want)
		}
		remove(t, tk)
	})
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(nsCtx(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
