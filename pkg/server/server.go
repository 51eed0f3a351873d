package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	contentapi "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	eventsapi "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	imagesapi "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	leasesapi "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	namespacesapi "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/cri"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/overlay"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// Server is the assembled daemon. Build it with New, run it with Serve,
// stop it with Stop (or by cancelling Serve's ctx).
type Server struct {
	cfg          Config
	registry     *prometheus.Registry
	snapshotters map[string]snapshot.Snapshotter
	snapshotter  string // the default snapshotter, after the overlay fallback
	exchange     *events.Exchange
	db           *meta.DB
	images       *imageservice.Service
	tasks        *task.Manager

	grpc        *grpc.Server
	grpcL       net.Listener
	cri         *cri.Service
	criEvents   atomic.Pointer[cri.Service] // s.cri, for the task Manager's events
	criGRPC     *grpc.Server                // nil when no CRI socket is configured
	criL        net.Listener
	metricsHTTP *http.Server
	metricsL    net.Listener // nil when metrics are disabled
	locks       []*dirLock   // of root and state, held until close
	serving     atomic.Bool  // from Serve until Stop, for /healthz

	// stopping is cancelled first thing in Stop, for the long-lived
	// streams (event subscriptions) to end.
	stopping       context.Context
	cancelStopping context.CancelFunc

	stopOnce sync.Once
	stopErr  error
}

// New builds the whole daemon from cfg, in order: directories, content
// store, snapshotters, events, metadata database, gRPC server with its
// interceptors and services, listeners, metrics endpoint. On error
// whatever was built is closed again.
func New(ctx context.Context, cfg Config) (_ *Server, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx)
	s := &Server{cfg: cfg, registry: prometheus.NewRegistry()}
	s.stopping, s.cancelStopping = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if retErr != nil {
			s.close(ctx)
		}
	}()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Root and state first: owned by the daemon's user, 0700 and locked
	// before anything in them is opened or swept, so that a second daemon
	// on them is refused before it can damage the first.
	if err := s.claimDirs(logger); err != nil {
		return nil, err
	}
	// Temporary mounts (an image's user database, an unpack) go in a
	// directory of the state; what a killed daemon left there goes now.
	if err := mount.CleanupTempMounts(ctx, s.tempMounts()); err != nil {
		logger.Error(err, "Clean the temporary mounts of a previous daemon")
	}
	if err := os.MkdirAll(s.tempMounts(), 0o700); err != nil {
		return nil, fmt.Errorf("create directory %q: %w", s.tempMounts(), err)
	}
	for _, dir := range []string{filepath.Join(cfg.Root, "content"), filepath.Join(cfg.Root, "snapshots")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create directory %q: %w", dir, err)
		}
	}

	// Backends: blobs, then filesystem layers.
	cs, err := local.NewStore(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	if err := s.openSnapshotters(ctx); err != nil {
		return nil, err
	}

	// Events, then the metadata database that publishes them and runs the
	// garbage collector (its scheduler stops when the database closes).
	s.exchange = events.NewExchange()
	s.db, err = meta.Open(ctx, filepath.Join(cfg.Root, "meta.db"), cs, s.snapshotters,
		meta.WithPublisher(s.exchange),
		meta.WithGCPolicy(cfg.GC),
		meta.WithRegisterer(s.registry))
	if err != nil {
		return nil, fmt.Errorf("metadata database: %w", err)
	}
	if s.images, err = s.newImageService(); err != nil {
		return nil, err
	}
	// Tasks after the database: the exits the shims kept while the
	// daemon was down are written into it as they are replayed.
	if err := s.newTaskManager(ctx); err != nil {
		return nil, err
	}

	// gRPC server: interceptors, then one service per noun.
	gm, err := newGRPCMetrics(s.registry)
	if err != nil {
		return nil, err
	}
	s.grpc = grpc.NewServer(append(serverOptions(gm, withNamespace), grpc.ChainStreamInterceptor(streamStopper(s.stopping)))...)
	contentSvc, err := newContentService(s.db.ContentStore(), s.registry)
	if err != nil {
		return nil, err
	}
	namespacesapi.RegisterNamespacesServer(s.grpc, &namespacesService{store: s.db.Namespaces()})
	contentapi.RegisterContentServer(s.grpc, contentSvc)
	imagesapi.RegisterImagesServer(s.grpc, &imagesService{store: s.db.Images(), svc: s.images, stopping: s.stopping})
	registerContainersAndTasks(s.grpc, s)
	leasesapi.RegisterLeasesServer(s.grpc, &leasesService{leases: s.db.Leases()})
	eventsapi.RegisterEventsServer(s.grpc, &eventsService{exchange: s.exchange, stopping: s.stopping})
	registerSnapshots(s.grpc, s.db, s.snapshotter)

	// The CRI: pods over tasks, CNI and images, on its own socket.
	if err := s.newCRI(ctx, gm); err != nil {
		return nil, err
	}

	// Listeners last, so that nothing listens before it can serve.
	if s.grpcL, err = listenUnix(cfg.GRPC.Address); err != nil {
		return nil, err
	}
	if s.criGRPC != nil {
		if s.criL, err = listenUnix(cfg.CRI.Address); err != nil {
			return nil, err
		}
	}
	if err := s.listenMetrics(); err != nil {
		return nil, err
	}
	logger.V(2).Info("daemon built", "root", cfg.Root, "address", cfg.GRPC.Address, "snapshotter", s.snapshotter, "metrics", s.MetricsAddress())
	return s, nil
}

// listenMetrics listens for /metrics and /healthz, unless disabled.
func (s *Server) listenMetrics() error {
	if s.cfg.Metrics.Address == "" {
		return nil
	}
	var err error
	if s.metricsL, err = net.Listen("tcp", s.cfg.Metrics.Address); err != nil {
		return fmt.Errorf("metrics address %q: %w", s.cfg.Metrics.Address, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", s.healthz)
	s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// claimDirs claims the root and the state directory (see claimDir), once
// when they are the same.
func (s *Server) claimDirs(logger klog.Logger) error {
	dirs := []struct{ key, dir string }{{"root", s.cfg.Root}, {"state", s.cfg.State}}
	if filepath.Clean(s.cfg.State) == filepath.Clean(s.cfg.Root) {
		dirs = dirs[:1]
	}
	for _, d := range dirs {
		l, err := claimDir(logger, d.key, d.dir)
		if err != nil {
			return err
		}
		s.locks = append(s.locks, l)
	}
	return nil
}

// openSnapshotters opens native and, when the filesystem supports it,
// overlayfs, each under root/snapshots/<name>. A configured overlayfs
// default falls back to native.
func (s *Server) openSnapshotters(ctx context.Context) error {
	s.snapshotters = map[string]snapshot.Snapshotter{}
	nat, err := native.NewSnapshotter(filepath.Join(s.cfg.Root, "snapshots", "native"))
	if err != nil {
		return fmt.Errorf("snapshotter native: %w", err)
	}
	s.snapshotters["native"] = nat
	s.snapshotter = s.cfg.Snapshotter
	ov, err := overlay.NewSnapshotter(filepath.Join(s.cfg.Root, "snapshots", "overlayfs"))
	if err != nil {
		klog.FromContext(ctx).Info("overlayfs snapshotter unavailable", "err", err)
		if s.snapshotter == "overlayfs" {
			s.snapshotter = "native"
		}
		return nil
	}
	s.snapshotters["overlayfs"] = ov
	return nil
}

// tempMounts is the directory of the daemon's temporary mounts.
func (s *Server) tempMounts() string { return filepath.Join(s.cfg.State, "tmpmounts") }

// newImageService builds the image service of cfg.Image, unpacking into
// the default snapshotter (after the overlayfs fallback).
func (s *Server) newImageService() (*imageservice.Service, error) {
	cfg := s.cfg.Image
	cfg.Snapshotter = s.snapshotter
	svc, err := imageservice.New(s.db, cfg, imageservice.WithRegisterer(s.registry), imageservice.WithTempMounts(s.tempMounts()))
	if err != nil {
		return nil, fmt.Errorf("image service: %w", err)
	}
	return svc, nil
}

// listenUnix listens on the unix socket path, created 0600 in a directory
// created 0700. A stale socket is removed; a live one is an error.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket directory %q: %w", filepath.Dir(path), err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	// The directory is private, so nobody can connect before the chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket %q: %w", path, err)
	}
	return l, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %q: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("socket %q: exists and is not a socket: %w", path, errdefs.ErrFailedPrecondition)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("socket %q: another daemon is listening on it: %w", path, errdefs.ErrAlreadyExists)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	return nil
}

// Address returns the path of the management socket.
func (s *Server) Address() string { return s.cfg.GRPC.Address }

// MetricsAddress returns the host:port /metrics is served on, "" when
// disabled. With a configured port 0 it is the port actually chosen.
func (s *Server) MetricsAddress() string {
	if s.metricsL == nil {
		return ""
	}
	return s.metricsL.Addr().String()
}

// Tasks returns the task manager.
func (s *Server) Tasks() *task.Manager { return s.tasks }

// DB returns the metadata database.
func (s *Server) DB() *meta.DB { return s.db }

// Serve serves the management API and /metrics until ctx is cancelled
// (then it stops the server) or Stop is called. It returns nil after a
// clean stop and the error of a failed listener otherwise.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	serveGRPC := func(srv *grpc.Server, l net.Listener) {
		err := srv.Serve(l)
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil // Stop came first
		}
		errc <- err
	}
	go serveGRPC(s.grpc, s.grpcL)
	if s.criGRPC != nil {
		go serveGRPC(s.criGRPC, s.criL)
	}
	if s.metricsL != nil {
		go func() {
			err := s.metricsHTTP.Serve(s.metricsL)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	s.serving.Store(true)
	klog.FromContext(ctx).Info("serving", "root", s.cfg.Root, "state", s.cfg.State, "snapshotter", s.snapshotter,
		"address", s.cfg.GRPC.Address, "cri", s.cfg.CRI.Address, "metrics", s.MetricsAddress())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if stopErr := s.Stop(); err == nil {
		err = stopErr
	}
	return err
}

// Stop stops the daemon: streaming calls are ended at once (see
// streamStopper), unary calls in progress get the configured shutdown
// timeout to finish and are cut after it; then the pulls still running
// are cancelled and waited for (again at most the shutdown timeout; past
// it Stop reports them), and the garbage collector, the database and the
// snapshotters are closed. Calling it again waits for the first call and
// returns its result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		ctx := context.Background()
		s.serving.Store(false)
		s.cancelStopping()
		timeout := time.Duration(s.cfg.GRPC.ShutdownTimeout)
		servers := []*grpc.Server{s.grpc}
		if s.criGRPC != nil {
			servers = append(servers, s.criGRPC)
		}
		for _, srv := range servers {
			done := make(chan struct{})
			go func() {
				srv.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(timeout):
				klog.FromContext(ctx).Info("graceful stop timed out, cutting calls in progress", "timeout", timeout)
				srv.Stop()
				<-done
			}
		}
		if s.metricsHTTP != nil {
			shutdownCtx, cancel := context.WithTimeout(ctx, timeout)
			s.metricsHTTP.Shutdown(shutdownCtx)
			cancel()
		}
		s.stopErr = s.close(ctx)
	})
	return s.stopErr
}

// close releases everything New built, in reverse order.
func (s *Server) close(ctx context.Context) error {
	var errs []error
	s.cancelStopping()
	if s.grpcL != nil {
		s.grpcL.Close() // already closed by a started server; harmless
	}
	if s.criL != nil {
		s.criL.Close()
	}
	if s.metricsL != nil {
		s.metricsL.Close()
	}
	if s.cri != nil {
		// Before the tasks: ended execs are killed and deleted.
		if err := s.cri.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.images != nil {
		// Pulls run on past the calls that started them; none may touch
		// the database once it is closed.
		cctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.GRPC.ShutdownTimeout))
		if err := s.images.Close(cctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if s.tasks != nil {
		// The shims, and their containers, keep running; their events
		// stop reaching the database before it closes.
		if err := s.tasks.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close task manager: %w", err))
		}
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close metadata database: %w", err))
		}
	}
	for name, sn := range s.snapshotters {
		if err := sn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close snapshotter %s: %w", name, err))
		}
	}
	// Last: the next daemon may open the directories once this lock goes.
	for _, l := range s.locks {
		if err := l.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		klog.FromContext(ctx).Error(err, "stop")
		return err
	}
	return nil
}
