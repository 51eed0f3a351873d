package spec

import (
	"fmt"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// DefaultPathEnv is the PATH a container gets when neither the image nor
// the request sets one.
const DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// processArgs combines the CRI command and args with the image's entrypoint
// and cmd the way kubelet expects (and Docker did):
//
//   - command set: command + args; the image's entrypoint and cmd are unused.
//   - command unset, args set: entrypoint + args.
//   - neither: entrypoint + cmd.
//
// An entrypoint of exactly [""] is the image clearing it. Nothing at all to
// run is InvalidArgument.
func processArgs(cfg *runtime.ContainerConfig, image *ocispec.ImageConfig) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		if len(args) == 0 {
			args = image.Cmd
		}
		if !(len(image.Entrypoint) == 1 && image.Entrypoint[0] == "") {
			command = image.Entrypoint
		}
	}
	out := append(append([]string{}, command...), args...)
	if len(out) == 0 {
		return nil, fmt.Errorf("command: none in the request nor in the image (entrypoint, cmd): %w", errdefs.ErrInvalidArgument)
	}
	for i, a := range out {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("command[%d] %q: NUL byte: %w", i, a, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

// envSet is an ordered environment where a later value of a key replaces
// the earlier one in place.
type envSet struct {
	list  []string
	index map[string]int
}

// set adds or replaces key=value; what names the source for errors. A key
// must be non-empty, without '=' or NUL; a value without NUL.
func (e *envSet) set(what, key, value string) error {
	if key == "" || strings.ContainsAny(key, "=\x00") {
		return fmt.Errorf("%s %q: not a valid variable name: %w", what, key, errdefs.ErrInvalidArgument)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("%s %q: NUL byte in the value: %w", what, key, errdefs.ErrInvalidArgument)
	}
	if key == "HOME" {
		if err := checkHome(what, value); err != nil {
			return err
		}
	}
	if e.index == nil {
		e.index = map[string]int{}
	}
	kv := key + "=" + value
	if i, ok := e.index[key]; ok {
		e.list[i] = kv
		return nil
	}
	e.index[key] = len(e.list)
	e.list = append(e.list, kv)
	return nil
}

// has reports whether key is set.
func (e *envSet) has(key string) bool {
	_, ok := e.index[key]
	return ok
}

// setImage adds the image's KEY=VALUE entries. An entry without '=' is
// skipped, as Docker does.
func (e *envSet) setImage(env []string) error {
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if err := e.set("image env", k, v); err != nil {
			return err
		}
	}
	return nil
}

// containerEnv builds the environment: PATH, HOSTNAME, the image's env,
// then the request's envs (which win), then HOME from the image's passwd
// when nobody set it ("/" when the user has no usable home).
func containerEnv(image *ocispec.ImageConfig, cfg *runtime.ContainerConfig, hostname, home string) ([]string, error) {
	var e envSet
	k, v, _ := strings.Cut(DefaultPathEnv, "=")
	if err := e.set("default env", k, v); err != nil {
		return nil, err
	}
	if hostname != "" {
		if err := e.set("hostname", "HOSTNAME", hostname); err != nil {
			return nil, err
		}
	}
	if err := e.setImage(image.Env); err != nil {
		return nil, err
	}
	for i, kv := range cfg.GetEnvs() {
		if err := e.set(fmt.Sprintf("envs[%d]", i), kv.GetKey(), string(kv.GetValue())); err != nil {
			return nil, err
		}
	}
	if !e.has("HOME") {
		if err := checkHome("image /etc/passwd home", home); err != nil {
			return nil, err
		}
		if !path.IsAbs(home) {
			home = "/"
		}
		if err := e.set("image /etc/passwd home", "HOME", home); err != nil {
			return nil, err
		}
	}
	return e.list, nil
}

// workingDir is the request's working_dir, else the image's, else "/". It
// must be absolute.
func workingDir(cfg *runtime.ContainerConfig, image *ocispec.ImageConfig) (string, error) {
	field, dir := "working_dir", cfg.GetWorkingDir()
	if dir == "" {
		field, dir = "image working dir", image.WorkingDir
	}
	if dir == "" {
		return "/", nil
	}
	if !path.IsAbs(dir) || strings.IndexByte(dir, 0) >= 0 {
		return "", fmt.Errorf("%s %q: not an absolute path: %w", field, dir, errdefs.ErrInvalidArgument)
	}
	return path.Clean(dir), nil
}
