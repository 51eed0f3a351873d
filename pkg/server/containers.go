package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"k8s.io/klog/v2"

	api "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// The labels of a container record that the tasks service reads.
const (
	// LabelGroup names the group whose shim holds the container's task
	// (CreateFromImage sets it; Tasks.Create defaults to it).
	LabelGroup = "cri-runtime.io/group"
	// LabelLogPath is the CRI log file of the container's output, under
	// <root>/logs/<namespace>/ when CreateFromImage made it; deleting the
	// container removes it there.
	LabelLogPath = "cri-runtime.io/log-path"
)

// cleanupTimeout bounds the undo of a failed create, run under a fresh ctx.
const cleanupTimeout = time.Minute

// containersService serves api/services/containers over meta's
// ContainerStore, and builds containers from images (containers_image.go).
// A container's lifecycle calls (its delete here, its task's create and
// delete in the tasks service) hold its key in locks.
type containersService struct {
	api.UnimplementedContainersServer
	store       *meta.ContainerStore
	db          *meta.DB
	images      *imageservice.Service
	tasks       *task.Manager
	locks       *keyLocks
	relays      *relays // those of a task its shim lost go with the container
	snapshotter string  // the default one
	logDir      string  // <root>/logs
	tempMounts  string  // <state>/tmpmounts
	host        hostInfo
}

// newContainersService returns the containers service of s; locks and
// relays are shared with the tasks service.
func (s *Server) newContainersService(locks *keyLocks, rs *relays) *containersService {
	return &containersService{
		store: s.db.Containers(), db: s.db, images: s.images, tasks: s.tasks, locks: locks, relays: rs,
		snapshotter: s.snapshotter, logDir: filepath.Join(s.cfg.Root, "logs"), tempMounts: s.tempMounts(),
	}
}

func (s *containersService) Get(ctx context.Context, req *api.GetContainerRequest) (*api.GetContainerResponse, error) {
	c, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &api.GetContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *containersService) List(ctx context.Context, req *api.ListContainersRequest) (*api.ListContainersResponse, error) {
	list, err := s.store.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.ListContainersResponse{Containers: make([]*api.Container, 0, len(list))}
	for _, c := range list {
		resp.Containers = append(resp.Containers, convert.ContainerToProto(c))
	}
	return resp, nil
}

func (s *containersService) Create(ctx context.Context, req *api.CreateContainerRequest) (*api.CreateContainerResponse, error) {
	c := convert.ContainerFromProto(req.GetContainer())
	c.Status = meta.Status{} // the daemon's to write
	c, err := s.store.Create(ctx, c)
	if err != nil {
		return nil, err
	}
	return &api.CreateContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *containersService) Update(ctx context.Context, req *api.UpdateContainerRequest) (*api.UpdateContainerResponse, error) {
	c, err := s.store.Update(ctx, convert.ContainerFromProto(req.GetContainer()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

// Delete removes the record, refused while the container has a task; then
// its active snapshot (unless kept) and its log file under logDir. What
// cannot be removed (a snapshot with children, one another record or
// lease holds) is left to the collector.
func (s *containersService) Delete(ctx context.Context, req *api.DeleteContainerRequest) (*emptypb.Empty, error) {
	id := req.GetId()
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	unlock, err := s.locks.lock(ctx, ns+"/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s.tasks != nil {
		if _, err := s.tasks.Get(ctx, id); err == nil {
			return nil, fmt.Errorf("container %q has a task: delete the task first: %w", id, errdefs.ErrFailedPrecondition)
		}
	}
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if req.GetKeepSnapshot() {
		err = s.store.Delete(ctx, id)
	} else {
		err = s.deleteWithSnapshot(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	s.relays.drop(relayKey{ns: ns, id: id})
	if p := c.Labels[LabelLogPath]; p != "" && s.ownsLog(ns, p) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			klog.FromContext(ctx).Error(err, "Remove the log of a deleted container", "container", id)
		}
	}
	return &emptypb.Empty{}, nil
}

// deleteWithSnapshot deletes the record c and removes the active
// snapshot it references, if nothing else holds it. A lease holds the
// snapshot from before the record goes until it is removed here, so that
// the collector, which the delete wakes, does not remove it behind this
// call: when Delete returns, the snapshot's directory is gone. A failure
// to remove it is logged, not returned: the record is gone, and the
// collector removes what nothing holds once the lease expires.
func (s *containersService) deleteWithSnapshot(ctx context.Context, c meta.Container) error {
	sn := s.db.Snapshotter(c.Snapshotter)
	if c.SnapshotKey == "" || sn == nil {
		return s.store.Delete(ctx, c.ID)
	}
	if info, err := sn.Stat(ctx, c.SnapshotKey); err != nil || info.Kind != snapshot.KindActive {
		// A committed snapshot or a view is not the container's own.
		return s.store.Delete(ctx, c.ID)
	}
	lctx, done, err := meta.WithLease(ctx, s.db.Leases(), meta.WithExpiration(cleanupTimeout))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = done(cctx)
	}()
	id, _ := leases.FromContext(lctx)
	res := meta.Resource{ID: c.SnapshotKey, Type: meta.ResourceSnapshots + "/" + c.Snapshotter}
	if err := s.db.Leases().AddResource(ctx, meta.Lease{ID: id}, res); err != nil {
		return err
	}
	if err := s.store.Delete(ctx, c.ID); err != nil {
		return err
	}
	if err := sn.Remove(ctx, c.SnapshotKey); err != nil && !errdefs.IsNotFound(err) {
		klog.FromContext(ctx).Error(err, "Remove the snapshot of a deleted container", "container", c.ID, "snapshot", c.SnapshotKey)
	}
	return nil
}

// logPath is where the output of container id of namespace ns goes.
func (s *containersService) logPath(ns, id string) string {
	return filepath.Join(s.logDir, ns, id+".log")
}

// ownsLog reports whether p is a log file this service made in ns.
func (s *containersService) ownsLog(ns, p string) bool {
	dir := filepath.Join(s.logDir, ns) + string(filepath.Separator)
	return strings.HasPrefix(filepath.Clean(p), dir)
}
