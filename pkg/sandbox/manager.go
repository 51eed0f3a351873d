package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// ExtNetwork is the extension of a sandbox record that holds its network:
// the netns path and the CNI result (Network, JSON).
const ExtNetwork = "cri-runtime.io/network"

// cleanupTimeout bounds each undo step and each teardown step: they run
// under a fresh context, whatever became of the caller's.
const cleanupTimeout = time.Minute

// Manager runs the life of pod sandboxes: the steps of a start, each with
// its undo, and the stop and removal that undo them later. It keeps no
// state of its own: the record in meta, the shim and the files on disk
// are the truth.
type Manager struct {
	db      *meta.DB
	tasks   *task.Manager
	network *cni.Network
	// snapshotter unpacks images; the pause's rootfs is a view in it.
	snapshotter string
	// dir holds the pods' files (hostname, hosts, resolv.conf); stateDir
	// their /dev/shm mounts.
	dir, stateDir string
}

// NewManager returns a Manager over the stores. dir (persistent) and
// stateDir (tmpfs, gone at reboot) are created.
func NewManager(db *meta.DB, tasks *task.Manager, network *cni.Network, snapshotter, dir, stateDir string) (*Manager, error) {
	for _, d := range []string{dir, stateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox directory: %w", err)
		}
	}
	return &Manager{db: db, tasks: tasks, network: network, snapshotter: snapshotter, dir: dir, stateDir: stateDir}, nil
}

// Network returns the CNI network the pods are attached to.
func (m *Manager) Network() *cni.Network { return m.network }

// Paths are where the files of a pod are, known before it starts: the
// pause spec, built first, names them.
type Paths struct {
	NetNS    string // "" with host network
	Dir      string
	Hostname string
	Hosts    string
	Resolv   string
	Shm      string // the host's /dev/shm with host IPC
	// IPC and UTS are where a pod without a pause pins its IPC and UTS
	// namespaces (unused with a pause, which holds them).
	IPC, UTS string
}

// Paths returns the paths of the pod id.
func (m *Manager) Paths(id string, hostNetwork, hostIPC bool) Paths {
	dir := filepath.Join(m.dir, id)
	p := Paths{
		Dir:      dir,
		Hostname: filepath.Join(dir, "hostname"),
		Hosts:    filepath.Join(dir, "hosts"),
		Resolv:   filepath.Join(dir, "resolv.conf"),
		Shm:      filepath.Join(m.stateDir, id, "shm"),
		IPC:      filepath.Join(m.stateDir, id, "ipcns"),
		UTS:      filepath.Join(m.stateDir, id, "utsns"),
	}
	if !hostNetwork {
		p.NetNS = filepath.Join(m.network.Config().NetNSDir, id)
	}
	if hostIPC {
		p.Shm = "/dev/shm"
	}
	return p
}

// Spec is a pod to start, as the CRI layer translated it.
type Spec struct {
	ID string
	// Record is the sandbox record to write (labels, extensions, runtime
	// name); Run adds the network extension and the GC reference to the
	// pause's rootfs.
	Record meta.Sandbox
	// RuntimeBinary is the OCI runtime (runc, crun) of the pod's handler.
	RuntimeBinary string
	// NoPause starts the pod without a pause container: its namespaces
	// are pinned on files (PinSpec) and it is ready until stopped.
	NoPause bool
	// Sysctls of a pod without a pause, validated; a pause's are in its
	// OCISpec.
	Sysctls map[string]string
	// ChainID is the pause image's top layer: its snapshot is the pause's
	// rootfs.
	ChainID string
	// OCISpec is the pause container's runtime-spec (JSON), built for
	// Paths(ID, HostNetwork, HostIPC).
	OCISpec     []byte
	HostNetwork bool
	HostIPC     bool
	// ShmSize is the size of the pod's /dev/shm tmpfs, in bytes.
	ShmSize int64
	// Network is what CNI is told of the pod.
	Network cni.PodOptions
	// Files are the contents of the pod's hostname, hosts and resolv.conf.
	Hostname, Hosts, Resolv []byte
}

// Network is a pod's network, as its record keeps it.
type Network struct {
	NetNS string `json:"netns,omitempty"`
	// IPC and UTS are the pinned namespaces of a pod without a pause
	// ("" with a pause, or the host's).
	IPC    string      `json:"ipcns,omitempty"`
	UTS    string      `json:"utsns,omitempty"`
	Result *cni.Result `json:"result,omitempty"`
	// TornDown is set once Stop has detached the pod: the next Stop does
	// nothing.
	TornDown bool `json:"tornDown,omitempty"`
	// NoPause is set for a pod without a pause container.
	NoPause bool `json:"noPause,omitempty"`
}

// Run starts the pod of spec: the named steps below, each undone in
// reverse, under its own bounded context, if a later one fails. stage
// reports each step as it begins.
func (m *Manager) Run(ctx context.Context, spec Spec, stage Stage) (retErr error) {
	var undo Undo
	defer func() {
		if retErr != nil {
			undo.Run(ctx)
		}
	}()
	// Lease: the pause's rootfs is held by it until the record refers to
	// it; deleted at the end, the record holds it then.
	lctx, done, err := CreateLease(ctx, m.db)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	defer done()
	paths := m.Paths(spec.ID, spec.HostNetwork, spec.HostIPC)

	var mounts []mount.Mount
	sn := m.db.Snapshotter(m.snapshotter)
	if !spec.NoPause {
		stage("snapshot")
		// Writable, as containerd's: the runtime makes the mount points
		// the image lacks (/proc, /dev); the spec makes the rootfs
		// read-only.
		if mounts, err = sn.Prepare(lctx, rootfsKey(spec.ID), spec.ChainID); err != nil {
			return fmt.Errorf("sandbox %s: pause rootfs: %w", spec.ID, err)
		}
		undo.Add("remove the pause rootfs", func(ctx context.Context) error { return sn.Remove(ctx, rootfsKey(spec.ID)) })
	}

	stage("files")
	if err := m.writeFiles(spec, paths); err != nil {
		return err
	}
	undo.Add("remove the pod's files", func(context.Context) error { return m.removeFiles(paths) })

	netw := Network{NoPause: spec.NoPause}
	if !spec.HostNetwork {
		stage("netns")
		if netw.NetNS, err = cni.NewNetNS(filepath.Dir(paths.NetNS), spec.ID); err != nil {
			return fmt.Errorf("sandbox %s: %w", spec.ID, err)
		}
		undo.Add("remove the netns", func(context.Context) error { return cni.RemoveNetNS(netw.NetNS) })
		stage("cni")
		if netw.Result, err = m.network.Setup(ctx, spec.ID, netw.NetNS, spec.Network); err != nil {
			return fmt.Errorf("sandbox %s: %w", spec.ID, err)
		}
		undo.Add("detach the network", func(ctx context.Context) error {
			return m.network.Teardown(ctx, spec.ID, netw.NetNS, spec.Network)
		})
	}

	if spec.NoPause {
		stage("namespaces")
		pin := PinSpec{Hostname: strings.TrimSpace(string(spec.Hostname)), NetNS: netw.NetNS, Sysctls: spec.Sysctls}
		if !spec.HostNetwork {
			pin.UTS = paths.UTS // the pod's UTS goes with its network
		}
		if !spec.HostIPC {
			pin.IPC = paths.IPC
		}
		if err := pinNamespaces(pin); err != nil {
			return fmt.Errorf("sandbox %s: %w", spec.ID, err)
		}
		netw.IPC, netw.UTS = pin.IPC, pin.UTS
		undo.Add("unpin the pod's namespaces", func(context.Context) error { return unpinNamespaces(pin.IPC, pin.UTS) })
	}

	stage("record")
	rec := spec.Record
	rec.ID = spec.ID
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	if !spec.NoPause {
		rec.Labels[meta.GCRefSnapshotLabel(m.snapshotter, "")] = rootfsKey(spec.ID)
	}
	if rec.Extensions == nil {
		rec.Extensions = map[string][]byte{}
	}
	if rec.Extensions[ExtNetwork], err = json.Marshal(netw); err != nil {
		return err
	}
	if err := m.db.Update(lctx, func(tx *meta.Tx) error {
		_, err := tx.CreateSandbox(rec)
		return err
	}); err != nil {
		return fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	undo.Add("delete the record", func(ctx context.Context) error { return m.db.Sandboxes().Delete(ctx, spec.ID) })
	if spec.NoPause {
		// Ready at once: nothing runs until the first container, whose
		// shim is the pod's.
		return m.db.UpdateStatus(ctx, spec.ID, func(st *meta.Status) bool { return st.Started(0, time.Now()) })
	}

	stage("shim")
	t, err := m.tasks.Create(ctx, spec.ID, task.CreateOpts{ID: spec.ID, Runtime: spec.RuntimeBinary, Spec: spec.OCISpec, Rootfs: mounts})
	if err != nil {
		return fmt.Errorf("sandbox %s: create the pause container: %w", spec.ID, err)
	}
	undo.Add("delete the pause container", func(ctx context.Context) error {
		_ = t.Kill(ctx, syscall.SIGKILL, task.KillOpts{All: true})
		_, err := t.Delete(ctx)
		return err
	})
	stage("start")
	pid, err := t.Start(ctx)
	if err != nil {
		return fmt.Errorf("sandbox %s: start the pause container: %w", spec.ID, err)
	}
	// Ready now, not when the shim's event arrives: the caller's next
	// call (CreateContainer) must find the pod ready.
	return m.db.UpdateStatus(ctx, spec.ID, func(st *meta.Status) bool { return st.Started(pid, time.Now()) })
}

// rootfsKey is the snapshot key of the pause's rootfs.
func rootfsKey(id string) string { return "sandbox-" + id }

// writeFiles writes the pod's hostname, hosts and resolv.conf, and mounts
// its /dev/shm.
func (m *Manager) writeFiles(spec Spec, p Paths) error {
	// 0700: the files are bound into the containers by the runtime, as
	// root; no one else needs to reach them.
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("sandbox %s: files: %w", spec.ID, err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{p.Hostname, spec.Hostname}, {p.Hosts, spec.Hosts}, {p.Resolv, spec.Resolv}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("sandbox %s: files: %w", spec.ID, err)
		}
	}
	if spec.HostIPC {
		return nil
	}
	if err := os.MkdirAll(p.Shm, 0o700); err != nil {
		return fmt.Errorf("sandbox %s: shm: %w", spec.ID, err)
	}
	data := fmt.Sprintf("mode=1777,size=%d", spec.ShmSize)
	if err := unix.Mount("shm", p.Shm, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("sandbox %s: mount shm: %w", spec.ID, err)
	}
	return nil
}

// removeFiles unmounts the pod's shm and removes its files; what is
// already gone is no error.
func (m *Manager) removeFiles(p Paths) error {
	errs := []error{unpinNamespaces(p.IPC, p.UTS)}
	if p.Shm != "/dev/shm" {
		if err := mount.UnmountAll(p.Shm); err != nil {
			errs = append(errs, err)
		} else if err := os.RemoveAll(filepath.Dir(p.Shm)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Live reports whether a pod without a pause is still whole: its record
// says so (Network.NoPause) and its pinned namespaces are there (a reboot
// takes them). A pod with a pause is live while its pause runs: false.
func Live(sb meta.Sandbox) bool {
	n, err := ReadNetwork(sb)
	if err != nil || !n.NoPause || n.TornDown {
		return false
	}
	for _, p := range []string{n.NetNS, n.IPC, n.UTS} {
		if p != "" && !mount.IsNSFile(p) {
			return false
		}
	}
	return true
}

// ReadNetwork returns the network of a sandbox record.
func ReadNetwork(sb meta.Sandbox) (Network, error) {
	var n Network
	b, ok := sb.Extensions[ExtNetwork]
	if !ok {
		return n, nil
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("sandbox %s: network record: %v: %w", sb.ID, err, errdefs.ErrInternal)
	}
	return n, nil
}

// Stop stops the pod's pause container and detaches its network: the pod
// is NotReady for good. Its containers must have been stopped first (the
// CRI layer does). Idempotent; it runs to its end under its own context,
// whatever becomes of the caller's, and a missing CNI configuration does
// not stop the netns from going.
func (m *Manager) Stop(ctx context.Context, id string, opts cni.PodOptions) error {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	log := klog.FromContext(ctx).WithValues("sandbox", id)
	if t, err := m.tasks.Get(cctx, id); err == nil {
		if err := t.Kill(cctx, syscall.SIGKILL, task.KillOpts{All: true}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
			return fmt.Errorf("sandbox %s: kill the pause container: %w", id, err)
		}
		if _, err := t.Wait(cctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("sandbox %s: wait for the pause container: %w", id, err)
		}
		exit, err := t.Delete(cctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("sandbox %s: delete the pause container: %w", id, err)
		}
		if err == nil {
			if err := m.db.UpdateStatus(cctx, id, func(st *meta.Status) bool {
				return st.Exited(int32(exit.Status), exit.At, exit.Reason, "")
			}); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	sb, err := m.db.Sandboxes().Get(cctx, id)
	if err != nil {
		return err
	}
	netw, err := ReadNetwork(sb)
	if err != nil {
		return err
	}
	if netw.NoPause {
		// NotReady for good, as a pod whose pause is stopped.
		if err := m.db.UpdateStatus(cctx, id, func(st *meta.Status) bool {
			return st.Live() && st.Exited(0, time.Now(), "", "")
		}); err != nil {
			return err
		}
	}
	if netw.NetNS != "" && !netw.TornDown {
		if err := m.network.Teardown(cctx, id, netw.NetNS, opts); err != nil {
			return fmt.Errorf("sandbox %s: %w", id, err)
		}
		if err := cni.RemoveNetNS(netw.NetNS); err != nil {
			return fmt.Errorf("sandbox %s: %w", id, err)
		}
		netw.TornDown = true
		b, err := json.Marshal(netw)
		if err != nil {
			return err
		}
		if _, err := m.db.Sandboxes().Update(cctx, meta.Sandbox{ID: id, Extensions: map[string][]byte{ExtNetwork: b}}, "extensions."+ExtNetwork); err != nil {
			return err
		}
	}
	p := m.Paths(id, false, false)
	if err := unpinNamespaces(netw.IPC, netw.UTS); err != nil {
		return fmt.Errorf("sandbox %s: %w", id, err)
	}
	if err := mount.UnmountAll(p.Shm); err != nil {
		return fmt.Errorf("sandbox %s: %w", id, err)
	}
	log.V(2).Info("Sandbox stopped")
	return nil
}

// Remove removes a stopped pod: its files, the pause's rootfs, then its
// record (refused while containers belong to it), last, so that a removal
// a crash interrupted is retried from the record. Idempotent: NotFound
// when there is nothing left.
func (m *Manager) Remove(ctx context.Context, id string) error {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if _, err := m.db.Sandboxes().Get(cctx, id); err != nil {
		return err
	}
	if ctrs, err := m.db.Containers().List(cctx, "sandboxid=="+id); err != nil {
		return err
	} else if len(ctrs) > 0 {
		return fmt.Errorf("sandbox %s still has %d containers: %w", id, len(ctrs), errdefs.ErrFailedPrecondition)
	}
	if err := m.removeFiles(m.Paths(id, false, false)); err != nil {
		return fmt.Errorf("sandbox %s: %w", id, err)
	}
	if err := m.db.Snapshotter(m.snapshotter).Remove(cctx, rootfsKey(id)); err != nil && !errdefs.IsNotFound(err) {
		// The record's GC label keeps it until the record goes: the
		// collector frees it then.
		klog.FromContext(ctx).Error(err, "Remove the pause's rootfs", "sandbox", id)
	}
	return m.db.Sandboxes().Delete(cctx, id)
}

// cleanupCtx is a context for work that must finish whatever became of
// ctx: its values, not its end, bounded by cleanupTimeout.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// Undo is the undo steps of the steps done so far; Run undoes them.
type Undo struct {
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func(context.Context) error
}

// Add adds the undo of a step just done.
func (u *Undo) Add(name string, fn func(context.Context) error) {
	u.steps = append(u.steps, undoStep{name, fn})
}

// Run runs the steps in reverse, each under its own fresh, bounded
// context; a failed step is logged and the others still run.
func (u *Undo) Run(ctx context.Context) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		cctx, cancel := cleanupCtx(ctx)
		if err := s.fn(cctx); err != nil && !errdefs.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "Undo step failed", "step", s.name)
		}
		cancel()
	}
}
