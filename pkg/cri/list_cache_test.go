package cri

import (
	"context"
	"encoding/json"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// checkLists compares what s lists, its caches warm, with what a service
// of cold caches over the same database lists, for a few filters.
func checkLists(t *testing.T, ctx context.Context, s *Service, step string) {
	t.Helper()
	cold := &Service{db: s.db}
	pods, err := cold.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("%s: %v, %v", step, pods, err)
	}
	first := pods.Items[0]
	podReqs := []*runtime.PodSandboxFilter{
		nil, {Id: first.Id[:8]}, {LabelSelector: map[string]string{"io.kubernetes.pod.name": first.Labels["io.kubernetes.pod.name"]}},
		{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}},
		{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}},
	}
	for _, f := range podReqs {
		req := &runtime.ListPodSandboxRequest{Filter: f}
		want, err := cold.ListPodSandbox(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ListPodSandbox(ctx, req)
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("%s: ListPodSandbox(%v) = %v, %v; want %v", step, f, got, err, want)
		}
	}
	for _, p := range pods.Items {
		for _, id := range []string{p.Id, p.Id[:12]} {
			pod, err := s.pod(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want, _, wantErr := s.podStatus(pod)
			got, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
			if (err == nil) != (wantErr == nil) || (err == nil && !proto.Equal(got.Status, want)) {
				t.Errorf("%s: PodSandboxStatus(%s) = %v, %v; want %v, %v", step, id, got, err, want, wantErr)
			}
			if err == nil && !strings.Contains(got.Info["info"], `"pid":`+strconv.Itoa(int(pod.Status.Pid))) {
				t.Errorf("%s: PodSandboxStatus(%s) verbose: %s", step, id, got.Info["info"])
			}
		}
	}
	ctrReqs := []*runtime.ContainerFilter{
		nil, {PodSandboxId: first.Id}, {PodSandboxId: first.Id[:10]}, {PodSandboxId: "0000nosuchpod"},
		{LabelSelector: map[string]string{"io.kubernetes.pod.name": first.Labels["io.kubernetes.pod.name"]}},
		{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}},
	}
	for _, f := range ctrReqs {
		req := &runtime.ListContainersRequest{Filter: f}
		want, err := cold.ListContainers(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ListContainers(ctx, req)
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("%s: ListContainers(%v) = %v, %v; want %v", step, f, got, err, want)
		}
	}
}

// The lists served from the caches are those read afresh after each kind
// of write: a status, labels, a config, a record removed and one added,
// and a write that changes nothing listed. The caches forget what is gone.
func TestListsFollowWrites(t *testing.T) {
	s, ctx := listFixture(t, 4)
	checkLists(t, ctx, s, "start")
	pods, _ := s.db.Sandboxes().List(ctx)
	ctrs, _ := s.db.Containers().List(ctx)

	if err := s.db.Sandboxes().SetStatus(ctx, pods[0].ID, meta.Status{State: meta.StateExited, Reason: "Completed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Containers().SetStatus(ctx, ctrs[1].ID, meta.Status{State: meta.StateExited, ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "status")

	pods[1].Labels["app"] = "changed"
	if _, err := s.db.Sandboxes().Update(ctx, pods[1], "labels"); err != nil {
		t.Fatal(err)
	}
	delete(ctrs[2].Labels, "io.kubernetes.pod.uid")
	if _, err := s.db.Containers().Update(ctx, ctrs[2], "labels"); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "labels")

	netw, err := sandbox.ReadNetwork(pods[2])
	if err != nil {
		t.Fatal(err)
	}
	netw.TornDown = true
	b, _ := json.Marshal(netw)
	if _, err := s.db.Sandboxes().Update(ctx, meta.Sandbox{ID: pods[2].ID, Extensions: map[string][]byte{sandbox.ExtNetwork: b}}, "extensions."+sandbox.ExtNetwork); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Sandboxes().Update(ctx, meta.Sandbox{ID: pods[3].ID}, "extensions."+sandbox.ExtNetwork); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "network")

	c, err := decodeContainer(ctrs[3])
	if err != nil {
		t.Fatal(err)
	}
	c.config.Annotations["new"] = "annotation"
	cfg, _ := proto.Marshal(c.config)
	ctrs[3].Extensions[ExtConfig] = cfg
	if _, err := s.db.Containers().Update(ctx, ctrs[3], "extensions."+ExtConfig); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "config")

	c.info.ImageRef = "sha256:" + strings.Repeat("9", 64)
	info, _ := json.Marshal(c.info)
	ctrs[3].Extensions[ExtInfo] = info
	if _, err := s.db.Containers().Update(ctx, ctrs[3], "extensions."+ExtInfo); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "info")

	if err := s.db.Containers().Delete(ctx, ctrs[0].ID); err != nil {
		t.Fatal(err)
	}
	added := ctrs[0]
	added.ID = newID()
	if _, err := s.db.Containers().Create(ctx, added); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "remove and add")
	if n := len(s.listed.containers.m); n != len(ctrs) {
		t.Errorf("%d containers cached, want %d", n, len(ctrs))
	}

	other := namespaces.WithNamespace(ctx, "other")
	if _, err := s.db.Sandboxes().Create(other, meta.Sandbox{ID: "elsewhere", Runtime: meta.Runtime{Name: "runc"}}); err != nil {
		t.Fatal(err)
	}
	checkLists(t, ctx, s, "a write elsewhere")
	if got, err := s.ListPodSandbox(other, &runtime.ListPodSandboxRequest{}); err != nil || len(got.Items) != 1 {
		t.Errorf("the other namespace lists %v, %v; want its one pod", got, err)
	}
	checkLists(t, ctx, s, "after the other namespace")
}

// A record whose config does not decode fails the list only when it is
// listed, as before the caches.
func TestListCorruptConfigOnlyWhenListed(t *testing.T) {
	s, ctx := listFixture(t, 2)
	pods, _ := s.db.Sandboxes().List(ctx)
	pods[0].Extensions[ExtConfig] = []byte{0xff}
	if _, err := s.db.Sandboxes().Update(ctx, pods[0], "extensions."+ExtConfig); err != nil {
		t.Fatal(err)
	}
	for range 2 { // cold, then from the cache
		if _, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); !errdefs.IsInternal(err) {
			t.Errorf("listing the corrupt pod: %v, want Internal", err)
		}
		resp, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: pods[1].ID}})
		if err != nil || len(resp.Items) != 1 {
			t.Errorf("listing the other pod: %v, %v", resp, err)
		}
	}
}

// Kubelet's relist of 100 pods allocates about one object per item when
// nothing was written since the last (the records are not read again),
// and a few dozen per record read when something was: a list read every
// record anew and decoded it, 60 to 130 objects each.
func TestListAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 200 records")
	}
	const n = 100
	s, ctx := listFixture(t, n)
	pods, _ := s.db.Sandboxes().List(ctx)
	lists := map[string]func(){
		"ListPodSandbox": func() { _, _ = s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}) },
		"ListContainers": func() { _, _ = s.ListContainers(ctx, &runtime.ListContainersRequest{}) },
	}
	for name, list := range lists {
		list()
		// The least of a few measures: the collector may run meanwhile.
		quiet := testing.AllocsPerRun(20, list)
		for range 2 {
			quiet = min(quiet, testing.AllocsPerRun(20, list))
		}
		if a := quiet; a > 2*n {
			t.Errorf("%s, nothing written: %.0f allocations for %d records", name, a, n)
		}
		i := 0
		written := func() {
			i++
			if err := s.db.Sandboxes().SetStatus(ctx, pods[i%n].ID, meta.Status{State: meta.StateRunning, Pid: uint32(i)}); err != nil {
				t.Fatal(err)
			}
		}
		written()
		list()
		least := uint64(1 << 62)
		for range 5 {
			written()
			least = min(least, mallocs(list))
		}
		if a := least; a > 30*n {
			t.Errorf("%s, after a write: %d allocations for %d records", name, a, n)
		}
	}
}

// mallocs is the number of heap objects f allocates.
func mallocs(f func()) uint64 {
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	f()
	goruntime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
