package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// listFixture is a Service over a real meta DB holding n pods, each with
// one container, shaped as RunPodSandbox and CreateContainer write them:
// the CRI config and info, the network record, an OCI spec of a few KiB,
// kubelet's labels and annotations, and a running status.
func listFixture(tb testing.TB, n int) (*Service, context.Context) {
	tb.Helper()
	db := metatest.New(tb)
	ctx := namespaces.WithNamespace(context.Background(), namespaces.K8s)
	s := &Service{db: db}
	for i := range n {
		uid := fmt.Sprintf("%08d-aaaa-bbbb-cccc-dddddddddddd", i)
		kl := map[string]string{"io.kubernetes.pod.name": fmt.Sprintf("pod-%d", i), "io.kubernetes.pod.namespace": "bench",
			"io.kubernetes.pod.uid": uid, "app": "bench", "pod-template-hash": "5d4f8c7b9"}
		ann := map[string]string{"kubernetes.io/config.seen": "2026-01-01T00:00:00.000000000Z", "kubernetes.io/config.source": "api"}
		pcfg := &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: kl["io.kubernetes.pod.name"], Namespace: "bench", Uid: uid},
			Hostname: kl["io.kubernetes.pod.name"], LogDirectory: "/var/log/pods/bench_" + uid,
			DnsConfig: &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"bench.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}},
			Labels:    kl, Annotations: ann,
			Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods/besteffort/pod" + uid,
				SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}},
		}
		ext, err := extensions(pcfg, podInfo{RuntimeHandler: "", PauseImage: "sha256:" + fmt.Sprintf("%064d", 1), CgroupParent: pcfg.Linux.CgroupParent})
		if err != nil {
			tb.Fatal(err)
		}
		netw, _ := json.Marshal(sandbox.Network{NetNS: "/var/run/netns/cni-" + uid, Result: &cni.Result{
			IPs:         []netip.Addr{netip.AddrFrom4([4]byte{10, 88, byte(i >> 8), byte(i)})},
			Attachments: []cni.Attachment{{Network: "bench", IfName: "eth0"}},
		}})
		ext[sandbox.ExtNetwork] = netw
		id := newID()
		sb := meta.Sandbox{ID: id, Labels: recordLabels(kl, podName(pcfg.Metadata)), Runtime: meta.Runtime{Name: "runc"},
			Spec: bytes.Repeat([]byte("s"), 6<<10), Extensions: ext,
			Status: meta.Status{State: meta.StateRunning, Pid: uint32(1000 + i), StartedAt: time.Now()}}
		if _, err := db.Sandboxes().Create(ctx, sb); err != nil {
			tb.Fatal(err)
		}
		ccfg := &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"}, Image: &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
			Command: []string{"sh", "-c", "sleep 3600"}, LogPath: "app/0.log",
			Labels: map[string]string{"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": kl["io.kubernetes.pod.name"],
				"io.kubernetes.pod.namespace": "bench", "io.kubernetes.pod.uid": uid},
			Annotations: map[string]string{"io.kubernetes.container.hash": "a1b2c3d4", "io.kubernetes.container.restartCount": "0",
				"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
		}
		cext, err := extensions(ccfg, containerInfo{ImageRef: "sha256:" + fmt.Sprintf("%064d", 2), ImageName: ccfg.Image.Image,
			LogPath: pcfg.LogDirectory + "/app/0.log", StopSignal: 15})
		if err != nil {
			tb.Fatal(err)
		}
		c := meta.Container{ID: newID(), SandboxID: id, Runtime: meta.Runtime{Name: "runc"}, Image: ccfg.Image.Image,
			Labels: recordLabels(ccfg.Labels, containerName(ccfg.Metadata, pcfg.Metadata)), Spec: bytes.Repeat([]byte("s"), 8<<10),
			Extensions: cext, Status: meta.Status{State: meta.StateRunning, Pid: uint32(2000 + i), StartedAt: time.Now()}}
		if _, err := db.Containers().Create(ctx, c); err != nil {
			tb.Fatal(err)
		}
	}
	return s, ctx
}

// BenchmarkListPodSandbox and BenchmarkListContainers are kubelet's
// relist over 100 pods: each lists all, every second. "quiet" lists a
// database nobody wrote to since the last list; "after-a-write" one where
// a pod's status changed before each list (not timed).
func BenchmarkListPodSandbox(b *testing.B) {
	benchList(b, func(s *Service, ctx context.Context) int {
		resp, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		if err != nil {
			b.Fatal(err)
		}
		return len(resp.Items)
	})
}

func BenchmarkListContainers(b *testing.B) {
	benchList(b, func(s *Service, ctx context.Context) int {
		resp, err := s.ListContainers(ctx, &runtime.ListContainersRequest{})
		if err != nil {
			b.Fatal(err)
		}
		return len(resp.Containers)
	})
}

func benchList(b *testing.B, list func(*Service, context.Context) int) {
	s, ctx := listFixture(b, 100)
	pods, err := s.db.Sandboxes().List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, write := range []bool{false, true} {
		name := "quiet"
		if write {
			name = "after-a-write"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if write {
					b.StopTimer()
					i++
					if err := s.db.Sandboxes().SetStatus(ctx, pods[i%len(pods)].ID, meta.Status{State: meta.StateRunning, Pid: uint32(i)}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if n := list(s, ctx); n != 100 {
					b.Fatalf("%d listed", n)
				}
			}
		})
	}
}

// BenchmarkPodSandboxStatus is kubelet's status of one pod of 100.
func BenchmarkPodSandboxStatus(b *testing.B) {
	s, ctx := listFixture(b, 100)
	all, err := s.db.Sandboxes().List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: all[50].ID}); err != nil {
			b.Fatal(err)
		}
	}
}
