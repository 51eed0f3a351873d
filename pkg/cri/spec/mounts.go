package spec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The destinations of the pod's files.
const (
	etcHosts      = "/etc/hosts"
	etcResolvConf = "/etc/resolv.conf"
	etcHostname   = "/etc/hostname"
	devShm        = "/dev/shm"
)

// defaultMounts are the file systems every container gets (containerd's,
// without its /run tmpfs, which the CRI plugin removes too). sysfs and the
// cgroup file system are read-only unless privileged.
func defaultMounts(privileged bool) []specs.Mount {
	mode := "ro"
	if privileged {
		mode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: devShm, Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", mode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", mode}},
	}
}

// podFileMounts are the pod's files as CRI mounts, added unless the
// request mounts the same destination. They are read-only when the rootfs
// is; /dev/shm is always writable.
func podFileMounts(files SandboxFiles, readonly bool) []*runtime.Mount {
	var out []*runtime.Mount
	for _, f := range []struct{ dst, src string }{
		{etcHostname, files.Hostname}, {etcHosts, files.Hosts}, {etcResolvConf, files.ResolvConf},
	} {
		if f.src != "" {
			out = append(out, &runtime.Mount{ContainerPath: f.dst, HostPath: f.src, Readonly: readonly})
		}
	}
	if files.Shm != "" {
		out = append(out, &runtime.Mount{ContainerPath: devShm, HostPath: files.Shm})
	}
	return out
}

// bindOptions are the mount_options a request may add to a bind mount.
var bindOptions = []string{
	"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime",
	"relatime", "norelatime", "strictatime", "nostrictatime", "nodiratime", "diratime",
}

// mountDest checks and cleans a destination in the container.
func mountDest(field, dst string) (string, error) {
	if !path.IsAbs(dst) || strings.IndexByte(dst, 0) >= 0 {
		return "", fmt.Errorf("%s %q: not an absolute path: %w", field, dst, errdefs.ErrInvalidArgument)
	}
	return path.Clean(dst), nil
}

// containerMounts merges the default mounts, the pod's files and the
// request's mounts: the request wins over the pod's files and both over
// the defaults (a /dev of the request also drops the defaults below /dev).
// Request mounts are sorted by depth, so /a is mounted before /a/b. It
// returns the mounts and the rootfs propagation they need ("" is the
// runtime's default, rprivate).
func containerMounts(cfg *runtime.ContainerConfig, files SandboxFiles, privileged bool, rt Runtime) ([]specs.Mount, string, error) {
	readonly := cfg.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	var mounts []*runtime.Mount
	var fields []string
	seen := map[string]bool{}
	for i, m := range cfg.GetMounts() {
		field := fmt.Sprintf("mounts[%d].container_path", i)
		dst, err := mountDest(field, m.GetContainerPath())
		if err != nil {
			return nil, "", err
		}
		seen[dst] = true
		mounts, fields = append(mounts, m), append(fields, fmt.Sprintf("mounts[%d]", i))
	}
	for _, m := range podFileMounts(files, readonly) {
		if !seen[m.ContainerPath] {
			seen[m.ContainerPath] = true
			mounts, fields = append(mounts, m), append(fields, "pod file "+m.ContainerPath)
		}
	}
	order := make([]int, len(mounts))
	for i := range order {
		order[i] = i
	}
	depth := func(i int) int { return strings.Count(path.Clean(mounts[i].GetContainerPath()), "/") }
	slices.SortStableFunc(order, func(a, b int) int { return depth(a) - depth(b) })

	var out []specs.Mount
	for _, d := range defaultMounts(privileged) {
		if seen[d.Destination] || (seen["/dev"] && strings.HasPrefix(d.Destination, "/dev/")) {
			continue
		}
		out = append(out, d)
	}
	propagation := ""
	for _, i := range order {
		m, prop, err := bindMount(fields[i], mounts[i], rt)
		if err != nil {
			return nil, "", err
		}
		switch {
		case prop == "rshared":
			propagation = "rshared"
		case prop == "rslave" && propagation == "":
			propagation = "rslave"
		}
		out = append(out, m)
	}
	return out, propagation, nil
}

// bindMount converts one CRI mount. The host path is used as given: the
// caller has created it if missing and resolved its symlinks, and checked
// that the source of a shared mount is shared. For an image mount (KEP
// 4639) the caller has put the mounted image (and sub path) in host_path;
// it is read-only (its programs may run: critest executes one, and
// containerd does not set noexec either).
func bindMount(field string, m *runtime.Mount, rt Runtime) (specs.Mount, string, error) {
	dst, _ := mountDest(field, m.GetContainerPath())
	src := m.GetHostPath()
	if !path.IsAbs(src) || strings.IndexByte(src, 0) >= 0 {
		return specs.Mount{}, "", fmt.Errorf("%s.host_path %q: not an absolute path: %w", field, src, errdefs.ErrInvalidArgument)
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		return specs.Mount{}, "", fmt.Errorf("%s: ID-mapped mounts: %w", field, errdefs.ErrNotImplemented)
	}
	opts := []string{"rbind"}
	var prop string
	switch p := m.GetPropagation(); p {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		prop = "rprivate"
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		prop = "rslave"
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		prop = "rshared"
	default:
		return specs.Mount{}, "", fmt.Errorf("%s.propagation %d: unknown: %w", field, p, errdefs.ErrInvalidArgument)
	}
	opts = append(opts, prop)
	image := m.GetImage().GetImage() != ""
	switch {
	case m.GetRecursiveReadOnly() && !m.GetReadonly():
		return specs.Mount{}, "", fmt.Errorf("%s.recursive_read_only: set on a read-write mount: %w", field, errdefs.ErrInvalidArgument)
	case m.GetRecursiveReadOnly() && prop != "rprivate":
		return specs.Mount{}, "", fmt.Errorf("%s.recursive_read_only: needs private propagation, not %s: %w", field, m.GetPropagation(), errdefs.ErrInvalidArgument)
	case m.GetRecursiveReadOnly() && !rt.RecursiveReadOnlyMounts:
		return specs.Mount{}, "", fmt.Errorf("%s.recursive_read_only: the runtime does not support recursive read-only mounts: %w", field, errdefs.ErrFailedPrecondition)
	case m.GetRecursiveReadOnly():
		opts = append(opts, "rro")
	case m.GetReadonly() || image:
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	for j, o := range m.GetMountOptions() {
		if !slices.Contains(bindOptions, o) {
			return specs.Mount{}, "", fmt.Errorf("%s.mount_options[%d] %q: not one of %s: %w", field, j, o, strings.Join(bindOptions, ", "), errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(opts, o) {
			opts = append(opts, o)
		}
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: path.Clean(src), Options: opts}, prop, nil
}
