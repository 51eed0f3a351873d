package cri

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// PodSandboxStatus returns the status of a pod: its state, IPs,
// namespaces and, verbose, its record and pause pid.
func (s *Service) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	pod, netw, err := s.podWithNetwork(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: podStatusOf(pod, netw)}
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

// podWithNetwork is the pod id (or the one pod whose ID starts with id)
// and its network. A pod named by its full ID is read in place and
// decoded once, as ListPodSandbox does: kubelet asks for the status of
// each pod whose state changed at each relist.
func (s *Service) podWithNetwork(ctx context.Context, id string) (podRecord, sandbox.Network, error) {
	var e *listEntry[podItem]
	err := errdefs.ErrNotFound
	if id != "" {
		err = s.db.Sandboxes().ViewID(ctx, id, func(v meta.RecordView) error {
			e, _ = s.listed.pods.entry(v, buildPodItem)
			return nil
		})
	}
	if errdefs.IsNotFound(err) {
		pod, err := s.pod(ctx, id)
		if err != nil {
			return pod, sandbox.Network{}, err
		}
		netw, err := sandbox.ReadNetwork(pod.Sandbox)
		return pod, netw, err
	}
	if err != nil {
		return podRecord{}, sandbox.Network{}, err
	}
	if e.err != nil {
		return podRecord{}, sandbox.Network{}, e.err
	}
	pod := podRecord{Sandbox: meta.Sandbox{ID: e.id, Labels: e.labels, Status: e.status, CreatedAt: meta.DecodeTime(e.raw[1])},
		config: e.item.config, info: e.item.info}
	netw, err := e.item.net.decode(e.id, e.raw[5])
	return pod, netw, err
}

// podStatus is the CRI status of pod.
func (s *Service) podStatus(pod podRecord) (*runtime.PodSandboxStatus, sandbox.Network, error) {
	netw, err := sandbox.ReadNetwork(pod.Sandbox)
	if err != nil {
		return nil, netw, err
	}
	return podStatusOf(pod, netw), netw, nil
}

// podStatusOf is the CRI status of pod, whose network is netw.
func podStatusOf(pod podRecord, netw sandbox.Network) *runtime.PodSandboxStatus {
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
	return st
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
		resp.Items = append(resp.Items, e.item.msg)
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
	// msg is what ListPodSandbox reports, shared by its answers.
	msg *runtime.PodSandbox
	// For PodSandboxStatus: the whole config and info, and the network,
	// decoded when first asked for.
	config *runtime.PodSandboxConfig
	info   podInfo
	net    *podNet
}

func (podItem) extension() string { return sandbox.ExtNetwork }

func (it podItem) message() proto.Message {
	if it.msg == nil {
		return nil
	}
	return it.msg
}

// podNet is a pod's network record, decoded once.
type podNet struct {
	once sync.Once
	netw sandbox.Network
	err  error
}

// decode is sandbox.ReadNetwork of the pod id whose network record is
// raw.
func (n *podNet) decode(id string, raw []byte) (sandbox.Network, error) {
	n.once.Do(func() {
		sb := meta.Sandbox{ID: id}
		if raw != nil {
			sb.Extensions = map[string][]byte{sandbox.ExtNetwork: raw}
		}
		n.netw, n.err = sandbox.ReadNetwork(sb)
	})
	return n.netw, n.err
}

func buildPodItem(e *listEntry[podItem]) {
	id, labels, ext := e.record()
	e.item = podItem{state: podState(e.status), createdAt: nanos(meta.DecodeTime(e.raw[1])), labels: criLabels(labels), net: &podNet{}}
	pod, err := decodePod(meta.Sandbox{ID: id, Labels: labels, Status: e.status, Extensions: ext})
	if err != nil {
		e.err = err
		return
	}
	e.item.metadata, e.item.annotations, e.item.handler = pod.config.GetMetadata(), pod.config.GetAnnotations(), pod.info.RuntimeHandler
	e.item.config, e.item.info = pod.config, pod.info
	it := &e.item
	it.msg = &runtime.PodSandbox{Id: id, Metadata: it.metadata, State: it.state, CreatedAt: it.createdAt,
		Labels: it.labels, Annotations: it.annotations, RuntimeHandler: it.handler}
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
