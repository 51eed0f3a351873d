package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/cri"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// BenchmarkCRIListPodSandbox is ListPodSandbox of 100 pods through the
// daemon's CRI socket: gRPC, the interceptor chain, the handler and the
// client, in one process (allocations are the client's and the
// server's). pkg/cri's BenchmarkListPodSandbox is the handler alone.
func BenchmarkCRIListPodSandbox(b *testing.B) {
	d := servertest.Start(b)
	ctx := namespaces.WithNamespace(context.Background(), namespaces.K8s)
	for i := range 100 {
		md := &runtime.PodSandboxMetadata{Name: fmt.Sprintf("pod-%d", i), Namespace: "bench", Uid: fmt.Sprintf("uid-%d", i)}
		labels := map[string]string{"io.kubernetes.pod.name": md.Name, "io.kubernetes.pod.namespace": "bench", "io.kubernetes.pod.uid": md.Uid, "app": "bench"}
		cfg, err := proto.Marshal(&runtime.PodSandboxConfig{Metadata: md, Labels: labels,
			Annotations: map[string]string{"kubernetes.io/config.seen": "2026-01-01T00:00:00Z", "kubernetes.io/config.source": "api"}})
		if err != nil {
			b.Fatal(err)
		}
		info, _ := json.Marshal(map[string]string{"runtimeHandler": ""})
		if _, err := d.Server.DB().Sandboxes().Create(ctx, meta.Sandbox{ID: fmt.Sprintf("%064d", i), Runtime: meta.Runtime{Name: "runc"},
			Labels: labels, Extensions: map[string][]byte{cri.ExtConfig: cfg, cri.ExtInfo: info}}); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := grpc.NewClient("unix://"+d.Config.CRI.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
		if err != nil || len(resp.Items) != 100 {
			b.Fatal(len(resp.GetItems()), err)
		}
	}
}
