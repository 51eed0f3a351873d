package cni

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// PodOptions describe a pod to its networks: the CNI_ARGS every plugin
// gets, and the capability arguments (runtimeConfig) that libcni passes to
// the plugins whose configuration declares the capability. The pkg/cri
// layer translates the CRI's PodSandboxConfig into them.
type PodOptions struct {
	// Namespace, Name and UID of the pod: K8S_POD_NAMESPACE, K8S_POD_NAME
	// and K8S_POD_UID. K8S_POD_INFRA_CONTAINER_ID is the pod ID.
	Namespace, Name, UID string

	// PortMappings are the "portMappings" capability (portmap plugin).
	// Mappings without a host port are not passed, as in containerd.
	PortMappings []PortMapping
	// Bandwidth is the "bandwidth" capability (bandwidth plugin); nil for
	// none.
	Bandwidth *Bandwidth
	// DNS is the "dns" capability; nil for none.
	DNS *DNSConfig
	// IPRanges is the "ipRanges" capability (host-local IPAM): ranges to
	// allocate from instead of those of the configuration.
	IPRanges [][]IPRange
	// CgroupPath is the "cgroupPath" capability: the pod's cgroup.
	CgroupPath string
	// Annotations are the "io.kubernetes.cri.pod-annotations" capability.
	Annotations map[string]string
}

// PortMapping is one entry of the "portMappings" capability.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`         // "tcp" (also for ""), "udp" or "sctp", any case
	HostIP        string `json:"hostIP,omitempty"` // an IP; "" for all the host's
}

// Bandwidth is the "bandwidth" capability: rates in bits per second,
// bursts in bits; 0 for no limit that way.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// DNSConfig is the "dns" capability.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// IPRange is one range of the "ipRanges" capability.
type IPRange struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

// validatePod checks the arguments of Setup, Teardown and Check; needNS
// also requires netnsPath to be an absolute path.
func validatePod(podID, netnsPath string, opts PodOptions, needNS bool) error {
	if e := utils.ValidateContainerID(podID); e != nil {
		return fmt.Errorf("pod ID %q: %s: %w", podID, e.Msg, errdefs.ErrInvalidArgument)
	}
	if needNS && !filepath.IsAbs(netnsPath) {
		return fmt.Errorf("pod %s: netns path %q: must be absolute: %w", podID, netnsPath, errdefs.ErrInvalidArgument)
	}
	for _, pm := range opts.PortMappings {
		if err := pm.validate(); err != nil {
			return fmt.Errorf("pod %s: port mapping %+v: %s: %w", podID, pm, err, errdefs.ErrInvalidArgument)
		}
	}
	for _, set := range opts.IPRanges {
		for _, r := range set {
			if _, err := netip.ParsePrefix(r.Subnet); err != nil {
				return fmt.Errorf("pod %s: ip range subnet %q: %w", podID, r.Subnet, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

func (pm PortMapping) validate() error {
	if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return fmt.Errorf("container port must be in 1-65535")
	}
	if pm.HostPort < 0 || pm.HostPort > 65535 {
		return fmt.Errorf("host port must be in 0-65535")
	}
	switch strings.ToLower(pm.Protocol) {
	case "", "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("protocol must be tcp, udp or sctp")
	}
	if pm.HostIP != "" {
		if _, err := netip.ParseAddr(pm.HostIP); err != nil {
			return fmt.Errorf("host IP is not an IP address")
		}
	}
	return nil
}

// runtimeConf builds the arguments of one network's ADD, DEL or CHECK.
func runtimeConf(podID, netnsPath, ifName string, opts PodOptions) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: podID,
		NetNS:       netnsPath,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", opts.Namespace},
			{"K8S_POD_NAME", opts.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", podID},
			{"K8S_POD_UID", opts.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	var pms []PortMapping
	for _, pm := range opts.PortMappings {
		if pm.HostPort == 0 {
			continue
		}
		pm.Protocol = strings.ToLower(pm.Protocol)
		if pm.Protocol == "" {
			pm.Protocol = "tcp"
		}
		pms = append(pms, pm)
	}
	if len(pms) > 0 {
		rt.CapabilityArgs["portMappings"] = pms
	}
	if opts.Bandwidth != nil {
		rt.CapabilityArgs["bandwidth"] = opts.Bandwidth
	}
	if opts.DNS != nil {
		rt.CapabilityArgs["dns"] = opts.DNS
	}
	if len(opts.IPRanges) > 0 {
		rt.CapabilityArgs["ipRanges"] = opts.IPRanges
	}
	if opts.CgroupPath != "" {
		rt.CapabilityArgs["cgroupPath"] = opts.CgroupPath
	}
	if len(opts.Annotations) > 0 {
		rt.CapabilityArgs["io.kubernetes.cri.pod-annotations"] = opts.Annotations
	}
	return rt
}
