// Package cri serves the CRI v1 API (k8s.io/cri-api RuntimeService and
// ImageService) on the stores, images, tasks and pod sandboxes: one file
// per RPC family, and the translation between CRI messages and the
// domain's records. It builds no gRPC status: errors carry errdefs
// classes, which the server's interceptor maps.
//
// Records. A pod sandbox is a meta.Sandbox whose ID is the pod's, with the
// pod's CRI labels, its config (ExtConfig, protobuf) and the CRI's own
// facts (ExtInfo, JSON); its task is the pause container, of the same ID,
// in a shim of its own group (the sandbox ID). A container is a
// meta.Container of that sandbox, whose task runs in the same shim. The
// last known status of both is meta's, written by the daemon from the
// shims' events; the CRI keeps no copy in memory. Names ("k8s_<pod>_..."
// as kubelet sees them) are labels under the reserved prefix, so a create
// can find what an earlier attempt made.
//
// It imports sandbox, image, task, meta, cni and the leaves.
package cri

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// The version reported by Version.
const (
	RuntimeName = "cri-runtime"
	APIVersion  = "v1"
)

// Version is the daemon's version, set by the build.
var Version = "0.1.0"

// Service is the CRI RuntimeService and ImageService.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	cfg        Config
	db         *meta.DB
	images     *imageservice.Service
	tasks      *task.Manager
	sandboxes  *sandbox.Manager
	network    *cni.Network
	exchange   *events.Exchange
	host       spec.Host
	metrics    *metrics
	root       string // the daemon's root: the image filesystem
	stateDir   string // the CRI's state: image volume mounts
	tempMounts string // see Deps.TempMounts
	features   map[string]handlerFeatures

	// pods and containers make creates idempotent under kubelet's retries.
	pods       *sandbox.Creates[string]
	containers *sandbox.Creates[string]
	// locks serialises the lifecycle operations of each pod and
	// container, by ID.
	locks keyLocks
	// stream serves Exec, Attach and PortForward, and holds the
	// containers' stdio for attach (streaming.go).
	stream *streamServer

	// listed caches what the lists, PodSandboxStatus and ImageStatus built
	// of unchanged records and blobs (list_cache.go, image_cache.go).
	listed decodeCache

	// podCIDR is the last UpdateRuntimeConfig's, guarded by mu.
	mu      sync.Mutex
	podCIDR string
}

// Deps are the parts of the daemon the CRI works on.
type Deps struct {
	DB        *meta.DB
	Images    *imageservice.Service
	Tasks     *task.Manager
	Sandboxes *sandbox.Manager
	Exchange  *events.Exchange
	// Root is the daemon's root directory, where images are.
	Root string
	// StateDir is the CRI's directory of state that does not outlive a
	// reboot (image volume mounts).
	StateDir string
	// TempMounts is where temporary mounts (an image's user database)
	// go: a directory the daemon cleans at start. Empty: os.TempDir().
	TempMounts string
	// Registerer takes the CRI's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// New returns the CRI service of cfg over deps.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, err := spec.DetectHost()
	if err != nil {
		return nil, fmt.Errorf("cri: host: %w", err)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, db: deps.DB, images: deps.Images, tasks: deps.Tasks, sandboxes: deps.Sandboxes,
		network: deps.Sandboxes.Network(), exchange: deps.Exchange, host: host, metrics: m, root: deps.Root, stateDir: deps.StateDir, tempMounts: deps.TempMounts,
	}
	s.features = detectFeatures(ctx, cfg, host.Kernel.Major > 5 || (host.Kernel.Major == 5 && host.Kernel.Minor >= 12))
	s.stream = newStreamServer(s, cfg)
	park := time.Duration(cfg.ParkTime)
	s.pods = sandbox.NewCreates[string](park, m.stage("RunPodSandbox"))
	s.containers = sandbox.NewCreates[string](park, m.stage("CreateContainer"))
	// Before serving: what a crash of the previous daemon cut in the
	// middle of a create, stop or removal.
	if err := s.sandboxes.Reconcile(namespaces.WithNamespace(ctx, namespaces.K8s)); err != nil {
		klog.FromContext(ctx).Error(err, "Reconcile pods after a restart")
	}
	return s, nil
}

// Register registers both services on srv.
func (s *Service) Register(srv *grpc.Server) {
	runtime.RegisterRuntimeServiceServer(srv, s)
	runtime.RegisterImageServiceServer(srv, s)
}

// keyLocks is a mutex per key, for the lifecycle of one object.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
