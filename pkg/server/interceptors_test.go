package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/rpc"
)

// chainUnary runs handler through the server's unary chain, in order.
func chainUnary(t *testing.T, m *grpcMetrics, ctx context.Context, handler grpc.UnaryHandler) error {
	t.Helper()
	chain := []grpc.UnaryServerInterceptor{unaryToGRPC}
	for _, s := range []ctxStep{withRequestID, withLogger, withNamespace} {
		chain = append(chain, s.unary)
	}
	chain = append(chain, m.unary, unaryRecover)
	info := &grpc.UnaryServerInfo{FullMethod: "/test.Svc/Call"}
	h := handler
	for i := len(chain) - 1; i >= 0; i-- {
		next, ic := h, chain[i]
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	_, err := h(ctx, nil)
	return err
}

// counter returns the value of the counter of vec with labels.
func counter(t *testing.T, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestPanicBecomesInternalAndIsCounted(t *testing.T) {
	m, err := newGRPCMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	err = chainUnary(t, m, context.Background(), func(context.Context, any) (any, error) {
		var labels map[string]string
		labels["boom"] = "x" // nil map write: a handler bug
		return nil, nil
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic gave %v, want Internal", err)
	}
	if !strings.Contains(status.Convert(err).Message(), "panic") {
		t.Fatalf("message %q does not say panic", status.Convert(err).Message())
	}
	if got := counter(t, m.handled, "/test.Svc/Call", "Internal"); got != 1 {
		t.Fatalf("handled{code=Internal} = %v, want 1", got)
	}
}

func TestDomainErrorsMapToCodes(t *testing.T) {
	m, err := newGRPCMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("image %q: %w", "x", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("namespace %q: %w", "ns", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{nil, codes.OK},
	} {
		err := chainUnary(t, m, context.Background(), func(context.Context, any) (any, error) { return nil, c.err })
		if status.Code(err) != c.code {
			t.Errorf("%v: code %v, want %v", c.err, status.Code(err), c.code)
		}
		if c.err != nil && status.Convert(err).Message() != c.err.Error() {
			t.Errorf("message %q, want %q", status.Convert(err).Message(), c.err.Error())
		}
		if got := counter(t, m.handled, "/test.Svc/Call", c.code.String()); got != 1 {
			t.Errorf("handled{code=%v} = %v, want 1", c.code, got)
		}
	}
}

func TestContextCarriesRequestIDLoggerAndNamespace(t *testing.T) {
	m, err := newGRPCMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpc.NamespaceHeader, "ns1"))
	var ids []string
	for range 2 {
		err = chainUnary(t, m, ctx, func(ctx context.Context, _ any) (any, error) {
			ids = append(ids, RequestID(ctx))
			if ns, err := namespaces.NamespaceRequired(ctx); err != nil || ns != "ns1" {
				return nil, fmt.Errorf("namespace %q, %v", ns, err)
			}
			if klog.FromContext(ctx).GetSink() == nil {
				return nil, fmt.Errorf("no logger in ctx")
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(ids[0]) != 36 || ids[0] == ids[1] {
		t.Fatalf("request IDs %q: want two distinct UUIDs", ids)
	}
}
