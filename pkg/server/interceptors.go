package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/rpc"
)

// RequestIDHeader is the response header that carries an RPC's request ID,
// the value of the "request" key in the daemon's log lines for that RPC.
const RequestIDHeader = "cri-runtime-request-id"

// The interceptor chain, outermost first. Every RPC passes the same steps,
// unary or streaming:
//
//  1. toGRPC: rpc.ToGRPC on the way out, the only place where a domain
//     error becomes a gRPC status. Outermost, so that it sees every error,
//     including the Internal error of a recovered panic.
//  2. request ID: a fresh UUID in ctx and in the response header.
//  3. logger: a klog logger in ctx with the rpc and request ID.
//  4. namespace: the namespace and lease headers, if any, into ctx
//     (rpc.IncomingContext), the namespace added to the logger. The
//     services themselves require it (namespaces.NamespaceRequired).
//  5. metrics: started/handled counters and the latency histogram, by
//     method and code (rpc.Code of the domain error).
//  6. recover: innermost, so a panic becomes an Internal error that the
//     metrics count and the log shows with its stack.
//
// The CRI socket passes the same chain, its namespace step setting k8s.io
// whatever the headers say (kubelet sends none).
func serverOptions(m *grpcMetrics, namespace ctxStep) []grpc.ServerOption {
	steps := []ctxStep{withRequestID, withLogger, namespace}
	unary := []grpc.UnaryServerInterceptor{unaryToGRPC}
	stream := []grpc.StreamServerInterceptor{streamToGRPC}
	for _, s := range steps {
		unary = append(unary, s.unary)
		stream = append(stream, s.stream)
	}
	unary = append(unary, m.unary, unaryRecover)
	stream = append(stream, m.stream, streamRecover)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
}

func unaryToGRPC(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, rpc.ToGRPC(err)
}

func streamToGRPC(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return rpc.ToGRPC(handler(srv, ss))
}

// A ctxStep derives the context of an RPC from its parent.
type ctxStep func(ctx context.Context, method string) context.Context

func (s ctxStep) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(s(ctx, info.FullMethod), req)
}

func (s ctxStep) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &ctxStream{ServerStream: ss, ctx: s(ss.Context(), info.FullMethod)})
}

// ctxStream is a ServerStream with a derived context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

type requestIDKey struct{}

// RequestID returns the request ID of the RPC whose context is ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func withRequestID(ctx context.Context, _ string) context.Context {
	id := uuid.NewString()
	// The header is best effort: a stream that has already sent headers
	// cannot carry it, and the ID is in the logs anyway.
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return context.WithValue(ctx, requestIDKey{}, id)
}

func withLogger(ctx context.Context, method string) context.Context {
	logger := klog.FromContext(ctx).WithValues("rpc", method, "request", RequestID(ctx))
	return klog.NewContext(ctx, logger)
}

// withK8sNamespace is the namespace step of the CRI socket.
func withK8sNamespace(ctx context.Context, _ string) context.Context {
	ctx = namespaces.WithNamespace(ctx, namespaces.K8s)
	return klog.NewContext(ctx, klog.FromContext(ctx).WithValues("namespace", namespaces.K8s))
}

func withNamespace(ctx context.Context, _ string) context.Context {
	ctx = rpc.IncomingContext(ctx)
	ns, ok := namespaces.Namespace(ctx)
	if !ok {
		return ctx
	}
	return klog.NewContext(ctx, klog.FromContext(ctx).WithValues("namespace", ns))
}

func unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(ctx, info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

func streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(ss.Context(), info.FullMethod, r)
		}
	}()
	return handler(srv, ss)
}

// panicError logs a recovered panic with its stack and returns it as an
// Internal error; the daemon keeps serving.
func panicError(ctx context.Context, method string, r any) error {
	klog.FromContext(ctx).Error(nil, "panic in handler", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return fmt.Errorf("%s: panic: %v: %w", method, r, errdefs.ErrInternal)
}

// grpcMetrics are the gRPC server's metrics.
type grpcMetrics struct {
	started *prometheus.CounterVec   // by method
	handled *prometheus.CounterVec   // by method and code
	latency *prometheus.HistogramVec // by method and code, seconds
}

func newGRPCMetrics(reg prometheus.Registerer) (*grpcMetrics, error) {
	m := &grpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_runtime_grpc_server_started_total",
			Help: "RPCs started on the server, by method.",
		}, []string{"method"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_runtime_grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and gRPC code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cri_runtime_grpc_server_handling_seconds",
			Help:    "Time from the start of an RPC to its completion, by method and gRPC code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "code"}),
	}
	for _, c := range []prometheus.Collector{m.started, m.handled, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register grpc metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts a completed RPC and logs it: failures at V(2), the rest
// at V(4).
func (m *grpcMetrics) observe(ctx context.Context, method string, start time.Time, err error) {
	d := time.Since(start)
	code := rpc.Code(err).String()
	m.handled.WithLabelValues(method, code).Inc()
	m.latency.WithLabelValues(method, code).Observe(d.Seconds())
	logger := klog.FromContext(ctx)
	if err != nil {
		logger.V(2).Info("rpc failed", "code", code, "duration", d, "err", err)
		return
	}
	logger.V(4).Info("rpc done", "duration", d)
}

func (m *grpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	m.started.WithLabelValues(info.FullMethod).Inc()
	resp, err := handler(ctx, req)
	m.observe(ctx, info.FullMethod, start, err)
	return resp, err
}

func (m *grpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	m.started.WithLabelValues(info.FullMethod).Inc()
	err := handler(srv, ss)
	m.observe(ss.Context(), info.FullMethod, start, err)
	return err
}
