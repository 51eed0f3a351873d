package spec

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// devicePermissions checks a device cgroup access string: a non-empty
// subset of "rwm"; "" is "rwm".
func devicePermissions(field, p string) (string, error) {
	if p == "" {
		return "rwm", nil
	}
	seen := map[rune]bool{}
	for _, c := range p {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return "", fmt.Errorf("%s %q: not a subset of \"rwm\": %w", field, p, errdefs.ErrInvalidArgument)
		}
		seen[c] = true
	}
	return p, nil
}

// containerDevices turns the request's devices into device nodes and
// device cgroup rules, after the default rule that denies every device.
// A privileged container gets every device of the host's /dev (when the
// caller gives a lookup) and a rule allowing all. A tty container that
// binds the host's /dev also gets /dev/console, as containerd does.
func containerDevices(cfg *runtime.ContainerConfig, privileged bool, lookup DeviceLookup) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	var nodes []specs.LinuxDevice
	add := func(devs []specs.LinuxDevice, access string) {
		for _, d := range devs {
			nodes = dropDevice(nodes, d.Path)
			nodes = append(nodes, d)
			if !privileged {
				major, minor := d.Major, d.Minor
				rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: access})
			}
		}
	}
	if privileged {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		if lookup != nil {
			devs, err := lookup("/dev")
			if err != nil {
				return nil, nil, fmt.Errorf("privileged: host devices: %w", err)
			}
			add(devs, "rwm")
		}
	}
	for i, d := range requestDevices(cfg) {
		field := fmt.Sprintf("devices[%d]", i)
		access, err := devicePermissions(field+".permissions", d.GetPermissions())
		if err != nil {
			return nil, nil, err
		}
		devs, err := lookupDevice(field, d, lookup)
		if err != nil {
			return nil, nil, err
		}
		add(devs, access)
	}
	return nodes, rules, nil
}

// requestDevices is the request's devices, with /dev/console added for a
// tty container that binds the host's /dev and does not list it.
func requestDevices(cfg *runtime.ContainerConfig) []*runtime.Device {
	devs := cfg.GetDevices()
	if !cfg.GetTty() {
		return devs
	}
	hostDev := false
	for _, m := range cfg.GetMounts() {
		hostDev = hostDev || (m.GetContainerPath() == "/dev" && m.GetHostPath() == "/dev")
	}
	if !hostDev {
		return devs
	}
	for _, d := range devs {
		if d.GetContainerPath() == "/dev/console" && d.GetHostPath() != "" {
			return devs
		}
	}
	return append(append([]*runtime.Device{}, devs...), &runtime.Device{HostPath: "/dev/console", ContainerPath: "/dev/console", Permissions: "rwm"})
}

// lookupDevice finds the nodes of one requested device and places them at
// its container path (the host path when none is given); the nodes found
// below a directory keep their place relative to it.
func lookupDevice(field string, d *runtime.Device, lookup DeviceLookup) ([]specs.LinuxDevice, error) {
	host := d.GetHostPath()
	if !path.IsAbs(host) {
		return nil, fmt.Errorf("%s.host_path %q: not an absolute path: %w", field, host, errdefs.ErrInvalidArgument)
	}
	host = path.Clean(host)
	dst := d.GetContainerPath()
	if dst == "" {
		dst = host
	}
	dst, err := mountDest(field+".container_path", dst)
	if err != nil {
		return nil, err
	}
	if lookup == nil {
		return nil, fmt.Errorf("%s %q: no device lookup configured: %w", field, host, errdefs.ErrFailedPrecondition)
	}
	found, err := lookup(host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	out := make([]specs.LinuxDevice, 0, len(found))
	for _, n := range found {
		rel, ok := strings.CutPrefix(path.Clean(n.Path), host)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			return nil, fmt.Errorf("%s: device %q is not below %q: %w", field, n.Path, host, errdefs.ErrInternal)
		}
		if n.Type != "c" && n.Type != "b" && n.Type != "u" && n.Type != "p" {
			return nil, fmt.Errorf("%s: device %q of type %q: %w", field, n.Path, n.Type, errdefs.ErrInvalidArgument)
		}
		n.Path = path.Join(dst, rel)
		out = append(out, n)
	}
	return out, nil
}

// dropDevice removes the node at p, so a later one replaces it.
func dropDevice(nodes []specs.LinuxDevice, p string) []specs.LinuxDevice {
	out := nodes[:0]
	for _, n := range nodes {
		if n.Path != p {
			out = append(out, n)
		}
	}
	return out
}
