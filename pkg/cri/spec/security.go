package spec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// DefaultMaskedPaths returns the paths hidden from an unprivileged
// container whose request names none (containerd's list).
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap",
		"/proc/scsi",
	}
}

// DefaultReadonlyPaths returns the paths read-only in an unprivileged
// container whose request names none (containerd's list).
func DefaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// procPaths returns the request's masked or read-only paths, or the
// defaults when it names none. kubelet always sends its own list for the
// default proc mount; an empty list (procMount Unmasked) cannot be told
// from an absent one on the wire, and gets the defaults: Unmasked needs
// user namespaces, which are not supported.
func procPaths(field string, req, defaults []string, privileged bool) ([]string, error) {
	if privileged {
		return nil, nil
	}
	if len(req) == 0 {
		return defaults, nil
	}
	out := make([]string, 0, len(req))
	for i, p := range req {
		if !path.IsAbs(p) || strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("%s[%d] %q: not an absolute path: %w", field, i, p, errdefs.ErrInvalidArgument)
		}
		out = append(out, path.Clean(p))
	}
	return slices.Compact(out), nil
}

// apparmorProfile returns the AppArmor profile of a container: none when
// the kernel has no AppArmor and the request asks for nothing or
// unconfined (anything else is refused, loudly, as containerd does); the
// runtime's default profile for RuntimeDefault (also when unset) unless
// privileged; the named profile for Localhost.
func apparmorProfile(sc *runtime.LinuxContainerSecurityContext, privileged bool, host Host, rt Runtime) (string, error) {
	const field = "linux.security_context.apparmor"
	p, err := securityProfile(field, sc.GetApparmor(), deprecatedAppArmor(sc.GetApparmorProfile()))
	if err != nil {
		return "", err
	}
	if !host.AppArmor {
		if p != nil && p.GetProfileType() != runtime.SecurityProfile_Unconfined {
			return "", fmt.Errorf("%s %s: the kernel has no AppArmor: %w", field, p.GetProfileType(), errdefs.ErrFailedPrecondition)
		}
		return "", nil
	}
	if p == nil {
		p = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_Unconfined:
		return "", nil
	case runtime.SecurityProfile_RuntimeDefault:
		if privileged {
			return "", nil
		}
		if rt.AppArmorProfile != "" {
			return rt.AppArmorProfile, nil
		}
		return DefaultAppArmorProfile, nil
	case runtime.SecurityProfile_Localhost:
		name := strings.TrimPrefix(p.GetLocalhostRef(), profileLocalhost)
		if name == "" || strings.ContainsAny(name, "\x00\n") {
			return "", fmt.Errorf("%s.localhost_ref %q: not a profile name: %w", field, name, errdefs.ErrInvalidArgument)
		}
		return name, nil
	}
	return "", fmt.Errorf("%s.profile_type %d: unknown: %w", field, p.GetProfileType(), errdefs.ErrInvalidArgument)
}

// deprecatedAppArmor maps the deprecated apparmor_profile values to those
// of seccomp_profile_path, which securityProfile reads.
func deprecatedAppArmor(s string) string {
	if s == "runtime/default" || s == "unconfined" || s == "" || strings.HasPrefix(s, profileLocalhost) {
		return s
	}
	return "invalid:" + s
}
