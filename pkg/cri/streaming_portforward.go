package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// dialTimeout bounds the connect to the pod's port.
const dialTimeout = 5 * time.Second

// PortForward prepares a port-forward into a ready pod and returns its
// URL on the streaming server.
func (s *Service) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("port-forward: port %d out of range: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if podState(pod.Status) != runtime.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s is not ready: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	sess := s.stream.newSession(pod.ID)
	resp, err := srv.GetPortForward(&runtime.PortForwardRequest{PodSandboxId: pod.ID + "/" + sess.id, Port: req.GetPort()})
	if err != nil {
		sess.end()
		return nil, err
	}
	s.stream.expect(resp.GetUrl(), &pending{sess: sess})
	return resp, nil
}

// portForwardSession is one PortForward URL: made by the RPC, bound to
// its connection when the client comes (within streamTokenTTL),
// ended with it. Its forwards run under its context.
type portForwardSession struct {
	st     *streamServer
	id     string
	pod    string
	ctx    context.Context
	cancel context.CancelFunc
}

func (st *streamServer) newSession(pod string) *portForwardSession {
	var b [12]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(st.ctx)
	sess := &portForwardSession{st: st, id: hex.EncodeToString(b[:]), pod: pod, ctx: ctx, cancel: cancel}
	st.mu.Lock()
	st.sessions[sess.id] = sess
	st.mu.Unlock()
	return sess
}

// session returns the live session the streaming package names by
// "<pod>/<session>".
func (st *streamServer) session(name string) (*portForwardSession, error) {
	_, id, _ := strings.Cut(name, "/")
	st.mu.Lock()
	sess := st.sessions[id]
	st.mu.Unlock()
	if sess == nil || sess.ctx.Err() != nil {
		return nil, fmt.Errorf("port-forward session of %q has ended: %w", name, errdefs.ErrFailedPrecondition)
	}
	return sess, nil
}

// end ends the session's forwards and forgets it.
func (sess *portForwardSession) end() {
	sess.cancel()
	sess.st.mu.Lock()
	delete(sess.st.sessions, sess.id)
	sess.st.mu.Unlock()
}

// portForward connects to port on the loopback of the pod's network
// namespace (the host's for a host-network pod) and copies between that
// connection and stream until the pod's side is done or ctx ends. The
// client's end of its stream half-closes the connection.
func (s *Service) portForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port-forward: port %d out of range: %w", port, errdefs.ErrInvalidArgument)
	}
	pod, err := s.pod(ctx, podID)
	if err != nil {
		return err
	}
	if podState(pod.Status) != runtime.PodSandboxState_SANDBOX_READY {
		return fmt.Errorf("sandbox %s is not ready: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	conn, err := dialPod(ctx, pod, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	klog.FromContext(ctx).V(4).Info("Port-forward", "sandbox", pod.ID, "port", port)
	return forward(ctx, conn, stream)
}

// dialPod connects to 127.0.0.1:port, else [::1]:port, in the network
// namespace of pod: the socket is made on a locked thread inside it.
func dialPod(ctx context.Context, pod podRecord, port int32) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	host := pod.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
	if host {
		return dialLoopback(ctx, port)
	}
	netw, err := sandbox.ReadNetwork(pod.Sandbox)
	if err != nil {
		return nil, err
	}
	if netw.NetNS == "" {
		return nil, fmt.Errorf("sandbox %s has no network namespace: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	var conn net.Conn
	err = cni.WithNetNS(netw.NetNS, func() error {
		var err error
		conn, err = dialLoopback(ctx, port)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", pod.ID, err)
	}
	return conn, nil
}

// dialLoopback dials the loopback's port from the calling thread: an IP
// literal and one address at a time, so that the socket is made on this
// goroutine (no resolver, no parallel attempt on another thread).
func dialLoopback(ctx context.Context, port int32) (net.Conn, error) {
	var d net.Dialer
	p := strconv.Itoa(int(port))
	conn, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p))
	if err4 == nil {
		return conn, nil
	}
	conn, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p))
	if err6 == nil {
		return conn, nil
	}
	return nil, fmt.Errorf("port %d: %w", port, errors.Join(err4, err6))
}

// forward copies between conn and stream. The client's EOF half-closes
// conn, and the pod's answer may still come; the pod's EOF, a failed
// copy or the end of ctx ends it.
func forward(ctx context.Context, conn net.Conn, stream io.ReadWriteCloser) error {
	up := make(chan error, 1)   // client to pod
	down := make(chan error, 1) // pod to client
	go func() {
		_, err := io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		}
		up <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		down <- err
	}()
	for {
		select {
		case err := <-up:
			if err != nil {
				conn.Close()
				<-down
				return err
			}
			up = nil // half-closed
		case err := <-down:
			// The copy to the pod, if it still runs, ends with the
			// client's stream (or the connection).
			return err
		case <-ctx.Done():
			conn.Close()
			<-down
			return context.Cause(ctx)
		}
	}
}
