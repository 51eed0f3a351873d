package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
)

// Version returns the runtime's name and versions.
func (s *Service) Version(ctx context.Context, req *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: Version, RuntimeApiVersion: APIVersion}, nil
}

// Status reports RuntimeReady, and NetworkReady with the reason the
// network is not (no CNI configuration, say), the runtime handlers and
// the features.
func (s *Service) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.network.Status(ctx); err != nil {
		networkReady.Status, networkReady.Reason, networkReady.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtime.StatusResponse{
		Status:   &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeReady, networkReady}},
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	for _, name := range s.cfg.handlers() {
		h := &runtime.RuntimeHandler{Name: name, Features: &runtime.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: s.features[name].RecursiveReadOnlyMounts}}
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, h)
		if name == s.cfg.DefaultRuntime {
			resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: "", Features: h.Features})
		}
	}
	if req.GetVerbose() {
		nets, _ := s.network.Networks(ctx)
		s.mu.Lock()
		cidr := s.podCIDR
		s.mu.Unlock()
		info, _ := json.Marshal(map[string]any{
			"sandboxImage": s.cfg.SandboxImage, "cgroupDriver": s.cfg.CgroupDriver, "runtimes": s.cfg.Runtimes,
			"defaultRuntime": s.cfg.DefaultRuntime, "networks": nets, "podCIDR": cidr, "cni": s.network.Config(),
		})
		resp.Info = map[string]string{"config": string(info)}
	}
	return resp, nil
}

// RuntimeConfig reports the cgroup driver, for kubelet to match.
func (s *Service) RuntimeConfig(ctx context.Context, req *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.cfg.CgroupDriver == string(spec.Systemd) {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR, which the CNI conf
// template (if any) is rendered with.
func (s *Service) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	s.mu.Lock()
	s.podCIDR = cidr
	s.mu.Unlock()
	if err := s.network.UpdatePodCIDR(ctx, splitCIDRs(cidr)); err != nil {
		return nil, err
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

func splitCIDRs(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
