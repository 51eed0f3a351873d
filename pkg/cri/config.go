package cri

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
)

// Config is the [cri] section of the daemon's config file: the CRI socket
// kubelet talks to, and how pods and containers are made.
type Config struct {
	// Address is the unix socket of the CRI (kubelet's
	// --container-runtime-endpoint), created 0600 in a 0700 directory.
	// Absolute path of at most 107 bytes; "" serves no CRI; default
	// "/run/cri-runtime/cri-runtime.sock".
	Address string `toml:"address"`

	// SandboxImage is the pause image every pod's sandbox runs: pulled
	// when missing, and reported pinned to kubelet's image GC.
	// Image reference; default "registry.k8s.io/pause:3.10".
	SandboxImage string `toml:"sandbox_image"`

	// DropInfraContainer starts pods that share no PID namespace
	// without a pause container, as CRI-O's drop_infra_ctr: their IPC and
	// UTS namespaces are pinned on files, as the network namespace is,
	// and the sandbox image is not used. A pod that shares its PID
	// namespace (POD) always has a pause, its PID 1. Default true.
	DropInfraContainer bool `toml:"drop_infra_container"`

	// StreamAddress is the host:port of the streaming server (exec,
	// attach, port-forward URLs kubelet hands to the API server); port 0
	// picks a free one. Default "127.0.0.1:0".
	StreamAddress string `toml:"stream_address"`

	// StreamIdleTimeout closes a streaming connection with no traffic for
	// that long. Duration string, > 0; default "4h".
	StreamIdleTimeout gc.Duration `toml:"stream_idle_timeout"`

	// CgroupDriver is how cgroup paths are written: "cgroupfs" or
	// "systemd", as kubelet's --cgroup-driver; reported by RuntimeConfig.
	// Default "cgroupfs".
	CgroupDriver string `toml:"cgroup_driver"`

	// DefaultRuntime is the runtime handler of a pod that names none.
	// A key of runtimes; default "runc".
	DefaultRuntime string `toml:"default_runtime"`

	// Runtimes are the runtime handlers a pod may name (RuntimeClass's
	// handler), each with its OCI runtime binary. Table of handler name to
	// runtime; default runc and crun, each the binary of its name.
	Runtimes map[string]RuntimeConfig `toml:"runtimes"`

	// MaxContainerLogLineSize splits longer lines of container logs into
	// partial ("P") lines. Bytes, > 0; default 16384.
	MaxContainerLogLineSize int `toml:"max_container_log_line_size"`

	// ExecSyncMaxOutput caps each of the stdout and stderr ExecSync
	// returns; the rest is dropped. Bytes, > 0; default 16777216 (16 MiB).
	ExecSyncMaxOutput int `toml:"exec_sync_max_output"`

	// CreateTimeout bounds a RunPodSandbox or CreateContainer, which runs
	// to its end past kubelet's deadline so that kubelet's retry gets its
	// result. Duration string, > 0; default "4m".
	CreateTimeout gc.Duration `toml:"create_timeout"`

	// ParkTime is how long the result of a create that kubelet stopped
	// waiting for is kept for its retry. Duration string, > 0; default
	// "10m".
	ParkTime gc.Duration `toml:"park_time"`
}

// RuntimeConfig is one runtime handler.
type RuntimeConfig struct {
	// Binary is the OCI runtime: a name in PATH or an absolute path. Default
	// the handler's name.
	Binary string `toml:"binary"`
}

// DefaultConfig returns the configuration documented on each field.
func DefaultConfig() Config {
	return Config{
		Address:                 "/run/cri-runtime/cri-runtime.sock",
		SandboxImage:            "registry.k8s.io/pause:3.10",
		DropInfraContainer:      true,
		StreamAddress:           "127.0.0.1:0",
		StreamIdleTimeout:       gc.Duration(4 * time.Hour),
		CgroupDriver:            string(spec.Cgroupfs),
		DefaultRuntime:          "runc",
		Runtimes:                map[string]RuntimeConfig{"runc": {Binary: "runc"}, "crun": {Binary: "crun"}},
		MaxContainerLogLineSize: 16 << 10,
		ExecSyncMaxOutput:       16 << 20,
		CreateTimeout:           gc.Duration(4 * time.Minute),
		ParkTime:                gc.Duration(10 * time.Minute),
	}
}

// Validate returns an InvalidArgument error naming the first key whose
// value is out of range.
func (c Config) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("cri.%s %v: %s: %w", key, v, why, errdefs.ErrInvalidArgument)
	}
	if c.Address != "" && !filepath.IsAbs(c.Address) {
		return bad("address", c.Address, "must be an absolute path")
	}
	if len(c.Address) > 107 {
		return bad("address", c.Address, "longer than the 107 bytes of a unix socket path")
	}
	if c.SandboxImage == "" {
		return bad("sandbox_image", `""`, "must name an image")
	}
	// Refused here, not by every RunPodSandbox of the daemon's life.
	if _, err := reference.ParseNormalizedNamed(c.SandboxImage); err != nil {
		return fmt.Errorf("cri.sandbox_image: %w", err)
	}
	if c.CgroupDriver != string(spec.Cgroupfs) && c.CgroupDriver != string(spec.Systemd) {
		return bad("cgroup_driver", c.CgroupDriver, `must be "cgroupfs" or "systemd"`)
	}
	for _, name := range c.handlers() {
		bin := c.Runtimes[name].Binary
		if bin == "" {
			bin = name
		}
		// A relative path would be found from the daemon's working
		// directory, whatever it is.
		if !filepath.IsAbs(bin) && strings.ContainsRune(bin, '/') {
			return bad("runtimes."+name+".binary", strconv.Quote(bin), "must be a name in PATH or an absolute path")
		}
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		return bad("default_runtime", c.DefaultRuntime, fmt.Sprintf("not a key of cri.runtimes (%v)", c.handlers()))
	}
	if c.MaxContainerLogLineSize <= 0 {
		return bad("max_container_log_line_size", c.MaxContainerLogLineSize, "must be > 0")
	}
	if c.ExecSyncMaxOutput <= 0 {
		return bad("exec_sync_max_output", c.ExecSyncMaxOutput, "must be > 0")
	}
	for key, d := range map[string]gc.Duration{"stream_idle_timeout": c.StreamIdleTimeout, "create_timeout": c.CreateTimeout, "park_time": c.ParkTime} {
		if d <= 0 {
			return bad(key, d, "must be > 0")
		}
	}
	return nil
}

// handlers lists the runtime handler names, sorted.
func (c Config) handlers() []string {
	var names []string
	for n := range c.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// binary returns the OCI runtime binary of the handler name ("" is the
// default handler); NotFound for an unknown handler.
func (c Config) binary(name string) (string, string, error) {
	if name == "" {
		name = c.DefaultRuntime
	}
	rt, ok := c.Runtimes[name]
	if !ok {
		return "", "", fmt.Errorf("runtime handler %q (known: %v): %w", name, c.handlers(), errdefs.ErrNotFound)
	}
	if rt.Binary == "" {
		return name, name, nil
	}
	return name, rt.Binary, nil
}
