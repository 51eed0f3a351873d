package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// PodSandboxStatus returns the status of a pod: its state, IPs,
// namespaces and, verbose, its record and pause pid.
func (s *Service) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, netw, err := s.podStatus(pod)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{
			"pid": pod.Status.Pid, "state": pod.Status.State.String(), "reason": pod.Status.Reason,
			"netns": netw.NetNS, "cni": netw.Result, "runtimeHandler": pod.info.RuntimeHandler,
			"pauseImage": pod.info.PauseImage, "config": pod.config,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// podStatus is the CRI status of pod.
func (s *Service) podStatus(pod podRecord) (*runtime.PodSandboxStatus, sandbox.Network, error) {
	netw, err := sandbox.ReadNetwork(pod.Sandbox)
	if err != nil {
		return nil, netw, err
	}
	st := &runtime.PodSandboxStatus{
		Id: pod.ID, Metadata: pod.config.GetMetadata(), State: podState(pod.Status), CreatedAt: nanos(pod.CreatedAt),
		Labels: criLabels(pod.Labels), Annotations: pod.config.GetAnnotations(), RuntimeHandler: pod.info.RuntimeHandler,
		Network: &runtime.PodSandboxNetworkStatus{},
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: pod.config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if netw.Result != nil && !netw.TornDown {
		for i, ip := range netw.Result.IPs {
			if i == 0 {
				st.Network.Ip = ip.String()
			} else {
				st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip.String()})
			}
		}
	}
	return st, netw, nil
}

// ListPodSandbox lists the pods that match the filter (ID prefix, state,
// labels).
func (s *Service) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	all, err := s.listed.pods.walk(ctx, s.db.Sandboxes().View, buildPodItem)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListPodSandboxResponse{Items: make([]*runtime.PodSandbox, 0, len(all))}
	for _, e := range all {
		if f.GetId() != "" && !strings.HasPrefix(e.id, f.GetId()) {
			continue
		}
		if f.GetState() != nil && e.item.state != f.GetState().GetState() {
			continue
		}
		if !matchLabels(e.item.labels, f.GetLabelSelector()) {
			continue
		}
		if e.err != nil {
			return nil, e.err
		}
		it := &e.item
		resp.Items = append(resp.Items, &runtime.PodSandbox{
			Id: e.id, Metadata: it.metadata, State: it.state, CreatedAt: it.createdAt,
			Labels: it.labels, Annotations: it.annotations, RuntimeHandler: it.handler,
		})
	}
	if len(resp.Items) == 0 {
		resp.Items = nil
	}
	return resp, nil
}

// podItem is what ListPodSandbox reports of a pod, decoded once.
type podItem struct {
	metadata    *runtime.PodSandboxMetadata
	state       runtime.PodSandboxState
	createdAt   int64
	labels      map[string]string // the CRI's
	annotations map[string]string
	handler     string
}

func buildPodItem(e *listEntry[podItem]) {
	id, labels, ext := e.record()
	e.item = podItem{state: podState(e.status), createdAt: nanos(meta.DecodeTime(e.raw[1])), labels: criLabels(labels)}
	pod, err := decodePod(meta.Sandbox{ID: id, Labels: labels, Status: e.status, Extensions: ext})
	if err != nil {
		e.err = err
		return
	}
	e.item.metadata, e.item.annotations, e.item.handler = pod.config.GetMetadata(), pod.config.GetAnnotations(), pod.info.RuntimeHandler
}

// matchLabels reports whether labels has every key and value of selector.
func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
