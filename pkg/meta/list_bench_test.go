package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// BenchmarkContainerList lists 100 containers shaped as the CRI's (an
// 8 KiB spec, 2 KiB of extensions, labels), as kubelet's relist does every
// second through ListContainers.
func BenchmarkContainerList(b *testing.B) {
	db := metatest.New(b)
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	for i := range 100 {
		sb := fmt.Sprintf("pod-%03d", i)
		if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: sb, Runtime: meta.Runtime{Name: "runc"}}); err != nil {
			b.Fatal(err)
		}
		c := meta.Container{
			ID: fmt.Sprintf("ctr-%03d", i), SandboxID: sb, Runtime: meta.Runtime{Name: "runc"},
			Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2", Spec: bytes.Repeat([]byte("s"), 8<<10),
			Labels:     map[string]string{"io.kubernetes.pod.name": sb, "io.kubernetes.pod.namespace": "bench", "app": "x"},
			Extensions: map[string][]byte{"cri.config": bytes.Repeat([]byte("c"), 1500), "cri.info": bytes.Repeat([]byte("i"), 500)},
		}
		if _, err := db.Containers().Create(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	for _, l := range []struct {
		name string
		list func(context.Context, ...string) ([]meta.Container, error)
	}{{"full", db.Containers().List}, {"without-spec", db.Containers().ListWithoutSpec}} {
		b.Run(l.name, func(b *testing.B) {
			for range b.N {
				cs, err := l.list(ctx)
				if err != nil || len(cs) != 100 {
					b.Fatal(len(cs), err)
				}
			}
		})
	}
}
