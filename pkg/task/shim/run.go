// Package shim is the shim process: one per sandbox group, it holds every
// container and exec process of the group, drives the OCI runtime (runc,
// crun) through go-runc, reaps every exit as child subreaper, watches
// OOM kills, writes the CRI logs, and serves the shim API (pkg/task/shimapi)
// on its unix socket. It outlives the daemon: it runs in its own session
// and keeps the last status of every process until the daemon deletes it.
//
// It must stay small: it links the leaves (errdefs, identifiers, mount),
// pkg/task/shimapi, pkg/task/cgroups, go-runc and runtime-spec, and
// nothing of the daemon (hack/depcheck checks the whole closure). The
// protocol, the process states and the files on disk are described in
// pkg/task/doc.go.
package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// Config is what the daemon gives a shim on its command line.
type Config struct {
	StateDir  string
	Namespace string
	Group     string
}

// maxProcs is the shim's GOMAXPROCS. The shim waits on the runtime and on
// pipes; one P is enough and saves the memory of the idle Ps and their
// threads: measured 0.3 MiB PSS of a shim holding 10 containers, on 2 CPUs.
// (A lower GOGC was measured too: 25 costs 0.6 MiB more than the default,
// the live heap being far under the minimum heap goal.)
const maxProcs = 1

// Run is the life of a shim process. ready, when not nil, receives "ok\n"
// once the socket listens, or the error that stopped the shim first; it
// is then closed. Run returns when the shim was asked to exit while it
// held no containers.
func Run(cfg Config, ready *os.File) (retErr error) {
	report := func(msg string) {
		if ready != nil {
			ready.WriteString(msg)
			ready.Close()
			ready = nil
		}
	}
	defer func() {
		if retErr != nil {
			report(retErr.Error() + "\n")
		}
	}()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(maxProcs)
	}
	if err := validate(cfg); err != nil {
		return err
	}
	dir := shimapi.GroupDir(cfg.StateDir, cfg.Namespace, cfg.Group)
	sock := shimapi.SocketPath(cfg.StateDir, cfg.Namespace, cfg.Group)
	l, err := listen(dir, sock)
	if err != nil {
		return err
	}
	defer l.Close()

	stop := make(chan struct{})
	defer close(stop)
	r := newReaper()
	if err := r.run(stop); err != nil {
		return fmt.Errorf("child subreaper: %w", err)
	}
	runc.Monitor = r
	s := newService(cfg.Namespace, cfg.Group, dir, r)
	defer close(s.stop)
	srv := shimapi.NewServer()
	register(srv, s)
	if err := os.WriteFile(filepath.Join(dir, shimapi.PidFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	// The shim's session is its own; a terminal hang-up or an interrupt
	// meant for the daemon must not end it. SIGTERM asks it to exit,
	// which it does only when it holds no containers.
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM)
	go func() {
		for range term {
			_, _ = s.Shutdown(context.Background(), &shimapi.Empty{})
		}
	}()
	go func() { _ = srv.Serve(l) }()
	report("ok\n")

	<-s.shutdown
	// Gone from disk before the connections close: a daemon that saw its
	// connection end may start the group's next shim at once.
	l.Close()
	os.Remove(sock)
	err = os.RemoveAll(dir)
	srv.Close()
	return err
}

func validate(cfg Config) error {
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return fmt.Errorf("state directory %q must be an absolute path: %w", cfg.StateDir, errdefs.ErrInvalidArgument)
	}
	if err := identifiers.Validate(cfg.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if err := identifiers.Validate(cfg.Group); err != nil {
		return fmt.Errorf("group: %w", err)
	}
	return shimapi.CheckStateDir(cfg.StateDir)
}

// listen binds the group's socket. A socket another shim of the group
// still listens on is AlreadyExists; a stale one is replaced.
func listen(dir, sock string) (net.Listener, error) {
	for _, d := range []string{dir, filepath.Dir(sock)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("shim directory: %w", err)
		}
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		return nil, fmt.Errorf("shim socket %s: another shim listens: %w", sock, errdefs.ErrAlreadyExists)
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("shim socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("shim socket: %w", err)
	}
	return l, nil
}

func register(srv *shimapi.Server, s *Service) {
	c := &compactor{}
	shimapi.Handle(srv, shimapi.MethodInfo, s.Info)
	shimapi.Handle(srv, shimapi.MethodCreate, compacting(c, s.Create))
	shimapi.Handle(srv, shimapi.MethodStart, compacting(c, s.Start))
	shimapi.Handle(srv, shimapi.MethodExec, compacting(c, s.Exec))
	shimapi.Handle(srv, shimapi.MethodKill, s.Kill)
	shimapi.Handle(srv, shimapi.MethodPause, s.Pause)
	shimapi.Handle(srv, shimapi.MethodResume, s.Resume)
	shimapi.Handle(srv, shimapi.MethodPids, s.Pids)
	shimapi.Handle(srv, shimapi.MethodUpdate, compacting(c, s.Update))
	shimapi.Handle(srv, shimapi.MethodCloseStdin, s.CloseStdin)
	shimapi.Handle(srv, shimapi.MethodResize, s.Resize)
	shimapi.Handle(srv, shimapi.MethodWait, s.Wait)
	shimapi.Handle(srv, shimapi.MethodDelete, compacting(c, s.Delete))
	shimapi.Handle(srv, shimapi.MethodCheckpoint, compacting(c, s.Checkpoint))
	shimapi.Handle(srv, shimapi.MethodState, s.State)
	shimapi.Handle(srv, shimapi.MethodEvents, s.Events)
	shimapi.Handle(srv, shimapi.MethodReopenLog, s.ReopenLog)
	shimapi.Handle(srv, shimapi.MethodShutdown, s.Shutdown)
}
