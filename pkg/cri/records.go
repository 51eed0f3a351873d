package cri

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// The labels and extensions the CRI keeps on its records. The labels are
// under the prefix that CRI labels may not use (spec.ReservedPrefix).
const (
	// LabelName is the name kubelet knows a pod or container by: a
	// create finds what an earlier attempt of the same name made.
	LabelName = "cri-runtime.io/cri.name"
	// ExtConfig is the CRI config of the record (protobuf).
	ExtConfig = "cri-runtime.io/cri.config"
	// ExtInfo is what the CRI knows beyond the config (JSON).
	ExtInfo = "cri-runtime.io/cri.info"
)

// podInfo is what a sandbox record keeps beyond its config.
type podInfo struct {
	RuntimeHandler string `json:"runtimeHandler,omitempty"`
	// PauseImage is the config digest of the pause image.
	PauseImage string `json:"pauseImage,omitempty"`
	// CgroupParent of the pod.
	CgroupParent string `json:"cgroupParent,omitempty"`
}

// containerInfo is what a container record keeps beyond its config.
type containerInfo struct {
	// ImageRef is the config digest of the image (the CRI image ID);
	// ImageName what the request named.
	ImageRef  string `json:"imageRef"`
	ImageName string `json:"imageName"`
	// LogPath is the container's CRI log file, absolute.
	LogPath string `json:"logPath,omitempty"`
	// StopSignal is the signal StopContainer sends first.
	StopSignal int `json:"stopSignal"`
	// Mounts as the CRI reports them, with image volumes' digests.
	Mounts []mountInfo `json:"mounts,omitempty"`
	// Resources last set (create or UpdateContainerResources).
	Resources []byte `json:"resources,omitempty"` // protobuf LinuxContainerResources
}

type mountInfo struct {
	ContainerPath  string `json:"containerPath"`
	HostPath       string `json:"hostPath"`
	Readonly       bool   `json:"readonly,omitempty"`
	Propagation    int32  `json:"propagation,omitempty"`
	Image          string `json:"image,omitempty"`
	ImageSubPath   string `json:"imageSubPath,omitempty"`
	ImageRef       string `json:"imageRef,omitempty"`
	SelinuxRelabel bool   `json:"selinuxRelabel,omitempty"`
}

// newID returns a fresh ID: 64 hexadecimal digits, as kubelet expects.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// podName is the name kubelet knows a pod by, unique per attempt.
func podName(md *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{"k8s_POD", md.GetName(), md.GetNamespace(), md.GetUid(), fmt.Sprint(md.GetAttempt())}, "_")
}

// containerName is the name kubelet knows a container by.
func containerName(md *runtime.ContainerMetadata, pod *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{"k8s", md.GetName(), pod.GetName(), pod.GetNamespace(), pod.GetUid(), fmt.Sprint(md.GetAttempt())}, "_")
}

// criLabels returns the CRI labels of a record: its labels without ours.
func criLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if !strings.HasPrefix(k, "cri-runtime.io/") {
			out[k] = v
		}
	}
	return out
}

// recordLabels returns the labels of a new record: the CRI's and its name.
func recordLabels(labels map[string]string, name string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelName] = name
	return out
}

// extensions returns the extensions of a record with config and info.
func extensions(config proto.Message, info any) (map[string][]byte, error) {
	c, err := proto.Marshal(config)
	if err != nil {
		return nil, err
	}
	i, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{ExtConfig: c, ExtInfo: i}, nil
}

// podRecord is a sandbox record decoded.
type podRecord struct {
	meta.Sandbox
	config *runtime.PodSandboxConfig
	info   podInfo
}

func decodePod(sb meta.Sandbox) (podRecord, error) {
	r := podRecord{Sandbox: sb, config: &runtime.PodSandboxConfig{}}
	if err := proto.Unmarshal(sb.Extensions[ExtConfig], r.config); err != nil {
		return r, fmt.Errorf("sandbox %s: config: %v: %w", sb.ID, err, errdefs.ErrInternal)
	}
	if b := sb.Extensions[ExtInfo]; b != nil {
		if err := json.Unmarshal(b, &r.info); err != nil {
			return r, fmt.Errorf("sandbox %s: info: %v: %w", sb.ID, err, errdefs.ErrInternal)
		}
	}
	return r, nil
}

// containerRecord is a container record decoded.
type containerRecord struct {
	meta.Container
	config *runtime.ContainerConfig
	info   containerInfo
}

func decodeContainer(c meta.Container) (containerRecord, error) {
	r := containerRecord{Container: c, config: &runtime.ContainerConfig{}}
	if err := proto.Unmarshal(c.Extensions[ExtConfig], r.config); err != nil {
		return r, fmt.Errorf("container %s: config: %v: %w", c.ID, err, errdefs.ErrInternal)
	}
	if b := c.Extensions[ExtInfo]; b != nil {
		if err := json.Unmarshal(b, &r.info); err != nil {
			return r, fmt.Errorf("container %s: info: %v: %w", c.ID, err, errdefs.ErrInternal)
		}
	}
	return r, nil
}

// nanos is t in nanoseconds since the epoch, 0 for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// podState is the CRI state of a sandbox: ready while its pause runs.
func podState(st meta.Status) runtime.PodSandboxState {
	if st.State == meta.StateRunning || st.State == meta.StatePaused {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

// containerState is the CRI state of a container.
func containerState(st meta.Status) runtime.ContainerState {
	switch st.State {
	case meta.StateCreated:
		return runtime.ContainerState_CONTAINER_CREATED
	case meta.StateRunning, meta.StatePaused:
		return runtime.ContainerState_CONTAINER_RUNNING
	case meta.StateExited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}
