package spec

import (
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestValidateSysctls(t *testing.T) {
	for _, tc := range []struct {
		key           string
		val           string
		hostNet, host bool
		ok            bool
	}{
		{key: "net.ipv4.ip_forward", val: "1", ok: true},
		{key: "net/ipv4/conf/eth0/forwarding", val: "1", ok: true},
		{key: "kernel.shmmax", val: "1", ok: true},
		{key: "kernel.msgmax", val: "1", ok: true},
		{key: "kernel.sem", val: "1 2 3 4", ok: true},
		{key: "fs.mqueue.msg_max", val: "1", ok: true},
		{key: "net.core.somaxconn", hostNet: true},
		{key: "kernel.shmmax", host: true},
		{key: "fs.mqueue.msg_max", host: true},
		{key: "net.core.somaxconn", host: true, ok: true},
		{key: "kernel.hostname"},
		{key: "kernel.semx"},
		{key: "vm.swappiness"},
		{key: "net.ipv4.ip_forward+kernel.panic"},
		{key: "net.ipv4..x"},
		{key: ""},
		{key: "net.ipv4.ip_forward", val: "1\nkernel.panic=1"},
	} {
		err := ValidateSysctls(map[string]string{tc.key: tc.val}, tc.hostNet, tc.host)
		if (err == nil) != tc.ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("%q=%q hostNet %v hostIPC %v: %v", tc.key, tc.val, tc.hostNet, tc.host, err)
		}
	}
}

func TestValidateKeys(t *testing.T) {
	for k, ok := range map[string]bool{
		"app": true, "io.kubernetes.pod.name": true, "cri-runtime.io": true,
		"cri-runtime.io/gc.root": false, "cri-runtime.io/sandbox-id": false, "": false,
	} {
		err := ValidateKeys("labels", map[string]string{k: "v"})
		if (err == nil) != ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("key %q: %v", k, err)
		}
	}
	_, err := buildContainer(t, func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
		c.Annotations = map[string]string{AnnotationSandboxID: "other"}
	})
	wantErr(t, err, errdefs.ErrInvalidArgument)
	s := testSandboxConfig()
	s.Labels = map[string]string{"cri-runtime.io/gc.ref.content.l.0": "sha256:x"}
	_, err = Sandbox(&ocispec.ImageConfig{Entrypoint: []string{"/pause"}}, s, SandboxOptions{ID: "s1"})
	wantErr(t, err, errdefs.ErrInvalidArgument)
}

func TestParseSignal(t *testing.T) {
	for s, want := range map[string]syscall.Signal{
		"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "9": syscall.SIGKILL, "SIGQUIT": syscall.SIGQUIT,
		"SIGRTMIN": 34, "SIGRTMIN+3": 37, "RTMAX": 64, "SIGRTMAX-1": 63, "SIGCLD": syscall.SIGCHLD, "SIGIOT": syscall.SIGABRT,
		"SIGPOLL": syscall.SIGIO, "sigwinch": syscall.SIGWINCH,
	} {
		got, err := ParseSignal(s)
		if err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "65", "-1", "SIGFOO", "SIGRTMIN+31", "SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMIN+x", "SIGRTMIN3"} {
		if _, err := ParseSignal(s); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want InvalidArgument", s, err)
		}
	}
}

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		req   runtime.Signal
		image string
		want  syscall.Signal
		err   error
	}{
		{want: syscall.SIGTERM},
		{image: "SIGQUIT", want: syscall.SIGQUIT},
		{image: "2", want: syscall.SIGINT},
		{req: runtime.Signal_SIGNAL_SIGUSR1, image: "SIGQUIT", want: syscall.SIGUSR1},
		{req: runtime.Signal_SIGNAL_SIGRTMINPLUS3, want: 37},
		{req: runtime.Signal_SIGNAL_SIGRTMAXMINUS1, want: 63},
		{req: runtime.Signal_SIGNAL_SIGRTMAX, want: 64},
		{req: runtime.Signal_SIGNAL_SIGPOLL, want: syscall.SIGIO},
		{image: "SIGNOPE", err: errdefs.ErrInvalidArgument},
		{req: 999, err: errdefs.ErrInvalidArgument},
	} {
		got, err := StopSignal(&runtime.ContainerConfig{StopSignal: tc.req}, &ocispec.ImageConfig{StopSignal: tc.image})
		wantErr(t, err, tc.err)
		if got != tc.want {
			t.Errorf("StopSignal(%v, %q) = %d, want %d", tc.req, tc.image, got, tc.want)
		}
	}
	// Every CRI signal maps to a number.
	for v := range runtime.Signal_name {
		if _, err := StopSignal(&runtime.ContainerConfig{StopSignal: runtime.Signal(v)}, &ocispec.ImageConfig{}); err != nil {
			t.Errorf("CRI signal %d: %v", v, err)
		}
	}
}

func TestParseKernelVersion(t *testing.T) {
	for s, want := range map[string]KernelVersion{"6.1.0-18-amd64": {6, 1}, "3.12-1-amd64": {3, 12}, "5.15": {5, 15}, "x": {}} {
		if got := ParseKernelVersion(s); got != want {
			t.Errorf("%q = %v, want %v", s, got, want)
		}
	}
}
