package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// restoreParallel bounds how many shims Restore reconnects to at once.
const restoreParallel = 16

// ExitStatusShimGone is the status reported for a process whose shim died:
// its real status is unknown.
const ExitStatusShimGone = 255

// Restore finds every shim under the state directory after a daemon
// (re)start. A live shim is reconnected: its tasks are returned, the exit
// of each stopped process is delivered to OnEvent (Replayed), and its
// events are followed again from where its state was read. A shim that is
// gone has its containers cleaned up (runtime state and cgroup, rootfs
// mounts, bundle) and reported exited with ReasonShimGone. An empty live
// shim is told to exit. Call it once, before anything else.
func (m *Manager) Restore(ctx context.Context) ([]State, error) {
	// The daemon's ends of the FIFOs died with the previous daemon.
	os.RemoveAll(filepath.Join(m.cfg.StateDir, "fifo"))
	var groups []groupKey
	nsDirs, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("task state directory: %w", err)
	}
	for _, nd := range nsDirs {
		if !nd.IsDir() || identifiers.Validate(nd.Name()) != nil || nd.Name() == "s" || nd.Name() == "fifo" {
			continue
		}
		gds, err := os.ReadDir(filepath.Join(m.cfg.StateDir, nd.Name()))
		if err != nil {
			return nil, fmt.Errorf("task state directory: %w", err)
		}
		for _, gd := range gds {
			if gd.IsDir() && identifiers.Validate(gd.Name()) == nil {
				groups = append(groups, groupKey{nd.Name(), gd.Name()})
			}
		}
	}
	var (
		mu   sync.Mutex
		out  []State
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, restoreParallel)
	)
	for _, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			states, err := m.restoreGroup(ctx, g.ns, g.group)
			mu.Lock()
			defer mu.Unlock()
			out = append(out, states...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(errs) > 0 {
		return out, fmt.Errorf("restore: %d shims: first: %w", len(errs), errs[0])
	}
	return out, nil
}

func (m *Manager) restoreGroup(ctx context.Context, ns, group string) ([]State, error) {
	sh := m.shimFor(ns, group)
	sh.life.Lock()
	c, err := sh.dial(ctx)
	if err != nil {
		defer sh.life.Unlock()
		if errdefs.IsFailedPrecondition(err) {
			// Another version, or not the shim we expect: leave it alone.
			return nil, err
		}
		return m.cleanupDeadShim(sh), nil
	}
	st, err := c.State(ctx, "")
	if err != nil {
		c.Close()
		sh.life.Unlock()
		return nil, fmt.Errorf("shim of group %q: %w", group, err)
	}
	var out []State
	for _, p := range st.Processes {
		if p.ExecID == "" {
			m.index(ns, p.ID, sh, 0)
			out = append(out, State{Namespace: ns, Group: group, ProcessState: p})
		}
	}
	sh.replayExits(st.Processes)
	if len(out) == 0 {
		sh.requestStop()
	}
	sh.mu.Lock()
	sh.attach(c, st.Seq)
	sh.mu.Unlock()
	sh.life.Unlock()
	return out, nil
}

// cleanupDeadShim removes what a dead shim left, reports its containers
// exited (ReasonShimGone) and deleted, and returns their states. Called
// with sh.life held.
func (m *Manager) cleanupDeadShim(sh *shim) []State {
	killShimProcess(sh)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), time.Minute)
	defer cancel()
	entries, _ := os.ReadDir(sh.dir)
	var out []State
	for _, e := range entries {
		if !e.IsDir() || identifiers.Validate(e.Name()) != nil {
			continue
		}
		id := e.Name()
		if err := cleanupBundle(ctx, filepath.Join(sh.dir, id), id); err != nil {
			klog.FromContext(ctx).Error(err, "cleanup after a dead shim", "namespace", sh.ns, "group", sh.group, "container", id)
			continue
		}
		exit := &Exit{Status: ExitStatusShimGone, At: time.Now(), Reason: shimapi.ReasonShimGone}
		m.unindex(sh.ns, id, sh)
		m.dropFIFOs(sh.ns, id)
		for _, topic := range []string{shimapi.TopicExit, shimapi.TopicDelete} {
			m.deliver(Event{Namespace: sh.ns, Group: sh.group, Event: shimapi.Event{Topic: topic, ID: id, At: exit.At, Exit: exit}})
		}
		out = append(out, State{Namespace: sh.ns, Group: sh.group, ProcessState: shimapi.ProcessState{ID: id, Status: shimapi.StatusStopped, Exit: exit}})
	}
	if len(out) == len(dirs(entries)) {
		os.RemoveAll(sh.dir)
		os.Remove(sh.sock)
		m.forget(sh)
	}
	return out
}

func dirs(entries []os.DirEntry) []os.DirEntry {
	var out []os.DirEntry
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e)
		}
	}
	return out
}

// cleanupBundle removes one container of a dead shim: the runtime kills
// its processes and removes its state and cgroup, what the runtime left
// of the cgroup is removed as the shim's own delete does
// (cgroups.RemoveContainer), then the rootfs is unmounted and the bundle
// removed.
func cleanupBundle(ctx context.Context, bundle, id string) error {
	cg := bundleCgroup(bundle)
	if b, err := os.ReadFile(filepath.Join(bundle, shimapi.RuntimeFile)); err == nil {
		rt := &runc.Runc{Command: strings.TrimSpace(string(b)), Root: filepath.Join(bundle, shimapi.RuntimeRoot)}
		state := filepath.Join(bundle, shimapi.RuntimeRoot, id)
		if _, err := os.Stat(state); err == nil {
			// A delete that failed but removed the runtime's state (runc's,
			// when the cgroup would not go) is done: the rest is below.
			if err := rt.Delete(ctx, id, &runc.DeleteOpts{Force: true}); err != nil {
				if _, serr := os.Stat(state); !os.IsNotExist(serr) {
					return fmt.Errorf("runtime delete: %w", err)
				}
			}
		}
	}
	if cg != nil {
		if err := cg.RemoveContainer(ctx, id); err != nil {
			return err
		}
	}
	if err := mount.UnmountAll(filepath.Join(bundle, shimapi.RootfsDir)); err != nil {
		return fmt.Errorf("unmount rootfs: %w", err)
	}
	return os.RemoveAll(bundle)
}

// bundleCgroup is the cgroup the bundle's spec put its container in, nil
// when the spec is unreadable or the path is not a cgroupfs one: a systemd
// unit ("slice:prefix:name") has its cgroup removed by systemd once its
// processes are gone.
func bundleCgroup(bundle string) *cgroups.Cgroup {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &spec) != nil || spec.Linux == nil {
		return nil
	}
	cg, err := cgroups.ForPath(spec.Linux.CgroupsPath)
	if err != nil {
		return nil
	}
	return cg
}

// killShimProcess kills the shim of sh if its pid file names a live shim
// of that group (a shim that stopped answering), and waits for it to go.
func killShimProcess(sh *shim) {
	b, err := os.ReadFile(filepath.Join(sh.dir, shimapi.PidFile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 || filepath.Base(string(args[0])) != ShimBinaryName ||
		!bytes.Contains(cmdline, []byte("\x00-group\x00"+sh.group+"\x00")) ||
		!bytes.Contains(cmdline, []byte("\x00-namespace\x00"+sh.ns+"\x00")) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
