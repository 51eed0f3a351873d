package spec

import (
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// TestProcessArgs holds the cases of containerd's TestContainerSpecCommand
// and kubelet's expectations.
func TestProcessArgs(t *testing.T) {
	for _, tc := range []struct {
		name            string
		command, args   []string
		entrypoint, cmd []string
		want            []string
		err             error
	}{
		{name: "command wins over the image", command: []string{"a", "b"}, entrypoint: []string{"c", "d"}, cmd: []string{"e", "f"}, want: []string{"a", "b"}},
		{name: "command and args", command: []string{"a", "b"}, args: []string{"c", "d"}, entrypoint: []string{"e"}, cmd: []string{"f"}, want: []string{"a", "b", "c", "d"}},
		{name: "args replace cmd after entrypoint", args: []string{"c", "d"}, entrypoint: []string{"a", "b"}, cmd: []string{"e", "f"}, want: []string{"a", "b", "c", "d"}},
		{name: "image entrypoint and cmd", entrypoint: []string{"a", "b"}, cmd: []string{"c", "d"}, want: []string{"a", "b", "c", "d"}},
		{name: "image cmd only", cmd: []string{"c"}, want: []string{"c"}},
		{name: "args without any entrypoint", args: []string{"x"}, cmd: []string{"c"}, want: []string{"x"}},
		{name: "image entrypoint cleared", entrypoint: []string{""}, cmd: []string{"c"}, want: []string{"c"}},
		{name: "nothing to run", err: errdefs.ErrInvalidArgument},
		{name: "cleared entrypoint and nothing else", entrypoint: []string{""}, err: errdefs.ErrInvalidArgument},
		{name: "NUL in an argument", command: []string{"a\x00b"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(&runtime.ContainerConfig{Command: tc.command, Args: tc.args}, &ocispec.ImageConfig{Entrypoint: tc.entrypoint, Cmd: tc.cmd})
			wantErr(t, err, tc.err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("args %q, want %q", got, tc.want)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	kv := func(k, v string) *runtime.KeyValue { return &runtime.KeyValue{Key: k, Value: []byte(v)} }
	for _, tc := range []struct {
		name     string
		image    []string
		envs     []*runtime.KeyValue
		hostname string
		home     string
		want     []string
		err      error
	}{
		{name: "defaults", hostname: "h", home: "/root", want: []string{DefaultPathEnv, "HOSTNAME=h", "HOME=/root"}},
		{name: "image overrides PATH in place", image: []string{"PATH=/x", "A=1"}, home: "/", want: []string{"PATH=/x", "A=1", "HOME=/"}},
		{name: "request overrides image", image: []string{"A=1", "B=2"}, envs: []*runtime.KeyValue{kv("A", "9"), kv("C", "3")}, home: "/", want: []string{DefaultPathEnv, "A=9", "B=2", "C=3", "HOME=/"}},
		{name: "value with = and spaces", envs: []*runtime.KeyValue{kv("A", "x=y z")}, home: "/", want: []string{DefaultPathEnv, "A=x=y z", "HOME=/"}},
		{name: "image entry without = skipped", image: []string{"NOVALUE", "A="}, home: "/", want: []string{DefaultPathEnv, "A=", "HOME=/"}},
		{name: "HOME from the request wins", envs: []*runtime.KeyValue{kv("HOME", "/h")}, home: "/root", want: []string{DefaultPathEnv, "HOME=/h"}},
		{name: "HOME from the image wins", image: []string{"HOME=/ih"}, home: "/root", want: []string{DefaultPathEnv, "HOME=/ih"}},
		{name: "no passwd home is /", home: "", want: []string{DefaultPathEnv, "HOME=/"}},
		{name: "relative passwd home is /", home: "rel", want: []string{DefaultPathEnv, "HOME=/"}},
		{name: "passwd home with newline", home: "/a\nb", err: errdefs.ErrInvalidArgument},
		{name: "image HOME with newline", image: []string{"HOME=/a\nb"}, err: errdefs.ErrInvalidArgument},
		{name: "request HOME with escape", envs: []*runtime.KeyValue{kv("HOME", "/a\x1b[0m")}, err: errdefs.ErrInvalidArgument},
		{name: "empty key", envs: []*runtime.KeyValue{kv("", "v")}, err: errdefs.ErrInvalidArgument},
		{name: "key with =", envs: []*runtime.KeyValue{kv("A=B", "v")}, err: errdefs.ErrInvalidArgument},
		{name: "NUL in value", envs: []*runtime.KeyValue{kv("A", "a\x00")}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerEnv(&ocispec.ImageConfig{Env: tc.image}, &runtime.ContainerConfig{Envs: tc.envs}, tc.hostname, tc.home)
			wantErr(t, err, tc.err)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("env %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWorkingDir(t *testing.T) {
	for _, tc := range []struct {
		req, image, want string
		err              error
	}{
		{want: "/"},
		{image: "/app", want: "/app"},
		{req: "/req", image: "/app", want: "/req"},
		{req: "/a/../b/", want: "/b"},
		{req: "rel", err: errdefs.ErrInvalidArgument},
		{image: "rel", err: errdefs.ErrInvalidArgument},
	} {
		got, err := workingDir(&runtime.ContainerConfig{WorkingDir: tc.req}, &ocispec.ImageConfig{WorkingDir: tc.image})
		wantErr(t, err, tc.err)
		if got != tc.want {
			t.Errorf("working dir (%q, %q) = %q, want %q", tc.req, tc.image, got, tc.want)
		}
	}
}
