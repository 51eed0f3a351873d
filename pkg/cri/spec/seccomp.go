package spec

import (
	"encoding/json"
	"fmt"
	"path"
	goruntime "runtime"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// MaxSeccompProfileSize bounds a Localhost seccomp profile.
const MaxSeccompProfileSize = 1 << 20

// The values of the deprecated seccomp_profile_path field.
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// securityProfile returns the profile of the request: the seccomp (or
// apparmor) field, else the deprecated string field translated, else nil
// (not set: unconfined, as containerd does).
func securityProfile(field string, sp *runtime.SecurityProfile, deprecated string) (*runtime.SecurityProfile, error) {
	if sp != nil {
		if sp.GetProfileType() != runtime.SecurityProfile_Localhost && sp.GetLocalhostRef() != "" {
			return nil, fmt.Errorf("%s.localhost_ref %q: set with profile_type %s: %w", field, sp.GetLocalhostRef(), sp.GetProfileType(), errdefs.ErrInvalidArgument)
		}
		return sp, nil
	}
	switch {
	case deprecated == "":
		return nil, nil
	case deprecated == profileRuntimeDefault || deprecated == profileDockerDefault:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case deprecated == profileUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(deprecated, profileLocalhost):
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(deprecated, profileLocalhost)}, nil
	}
	return nil, fmt.Errorf("%s %q: not runtime/default, docker/default, unconfined or localhost/<path>: %w", field, deprecated, errdefs.ErrInvalidArgument)
}

// seccompLocalhostPath returns the file of a Localhost profile, "" for
// any other profile.
func seccompLocalhostPath(sp *runtime.SecurityProfile, deprecated string) string {
	p, err := securityProfile("", sp, deprecated)
	if err != nil || p.GetProfileType() != runtime.SecurityProfile_Localhost {
		return ""
	}
	return strings.TrimPrefix(p.GetLocalhostRef(), profileLocalhost)
}

// ContainerSeccompPath returns the file the caller must read and pass as
// ContainerOptions.SeccompProfile: the host path of a Localhost seccomp
// profile, "" when the container has none.
func ContainerSeccompPath(cfg *runtime.ContainerConfig) string {
	sc := cfg.GetLinux().GetSecurityContext()
	return seccompLocalhostPath(sc.GetSeccomp(), sc.GetSeccompProfilePath())
}

// SandboxSeccompPath is ContainerSeccompPath for the pause container.
func SandboxSeccompPath(cfg *runtime.PodSandboxConfig) string {
	sc := cfg.GetLinux().GetSecurityContext()
	return seccompLocalhostPath(sc.GetSeccomp(), sc.GetSeccompProfilePath())
}

// seccompFilter returns the seccomp filter of a process: none when
// privileged, unconfined or unset; the moby default profile for
// RuntimeDefault; the caller-read profile for Localhost. Rules that depend
// on capabilities see the process's bounding set.
func seccompFilter(field string, sp *runtime.SecurityProfile, deprecated string, privileged bool, localhost []byte, bounding []string, host Host) (*specs.LinuxSeccomp, error) {
	p, err := securityProfile(field, sp, deprecated)
	if err != nil || privileged || p == nil {
		return nil, err
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_RuntimeDefault:
		return resolveSeccomp(seccomp.DefaultProfile(), bounding, host.Kernel)
	case runtime.SecurityProfile_Localhost:
		ref := strings.TrimPrefix(p.GetLocalhostRef(), profileLocalhost)
		if !path.IsAbs(ref) {
			return nil, fmt.Errorf("%s.localhost_ref %q: not an absolute path: %w", field, ref, errdefs.ErrInvalidArgument)
		}
		prof, err := ParseSeccompProfile(localhost)
		if err != nil {
			return nil, fmt.Errorf("%s.localhost_ref %q: %w", field, ref, err)
		}
		return resolveSeccomp(prof, bounding, host.Kernel)
	}
	return nil, fmt.Errorf("%s.profile_type %d: unknown: %w", field, p.GetProfileType(), errdefs.ErrInvalidArgument)
}

// ParseSeccompProfile parses a seccomp profile in the Docker/moby JSON form
// (a superset of the runtime-spec's LinuxSeccomp, with archMap and rules
// conditional on arch, capabilities and kernel).
func ParseSeccompProfile(data []byte) (*seccomp.Seccomp, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("seccomp profile: empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(data) > MaxSeccompProfileSize {
		return nil, fmt.Errorf("seccomp profile: %d bytes, over the limit of %d: %w", len(data), MaxSeccompProfileSize, errdefs.ErrInvalidArgument)
	}
	var prof seccomp.Seccomp
	if err := json.Unmarshal(data, &prof); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return &prof, nil
}

// goArchToSeccomp maps GOARCH to the seccomp architecture of the profile's
// archMap and to the name its includes/excludes use.
var goArchToSeccomp = map[string]struct {
	arch specs.Arch
	name string
}{
	"386": {specs.ArchX86, "x86"}, "amd64": {specs.ArchX86_64, "amd64"},
	"arm": {specs.ArchARM, "arm"}, "arm64": {specs.ArchAARCH64, "arm64"},
	"loong64": {specs.ArchLOONGARCH64, "loongarch64"}, "mips64": {specs.ArchMIPS64, "mips64"},
	"mips64le": {specs.ArchMIPSEL64, "mipsel64"}, "mipsle": {specs.ArchMIPSEL, "mipsel"},
	"ppc64": {specs.ArchPPC64, "ppc64"}, "ppc64le": {specs.ArchPPC64LE, "ppc64le"},
	"riscv64": {specs.ArchRISCV64, "riscv64"}, "s390x": {specs.ArchS390X, "s390x"},
}

// resolveSeccomp turns a moby profile into the runtime-spec filter for
// this architecture, the given bounding capabilities and kernel. An
// unknown kernel (zero) counts as older than any minKernel. A profile with
// neither a default action nor rules is no filter.
func resolveSeccomp(p *seccomp.Seccomp, bounding []string, kernel KernelVersion) (*specs.LinuxSeccomp, error) {
	if p.DefaultAction == "" && len(p.Syscalls) == 0 {
		return nil, nil
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile: rules without a defaultAction: %w", errdefs.ErrInvalidArgument)
	}
	if len(p.Architectures) != 0 && len(p.ArchMap) != 0 {
		return nil, fmt.Errorf("seccomp profile: both architectures and archMap: %w", errdefs.ErrInvalidArgument)
	}
	out := p.LinuxSeccomp
	out.Architectures = slices.Clone(p.Architectures)
	out.Syscalls = nil
	arch := goArchToSeccomp[goruntime.GOARCH]
	for _, a := range p.ArchMap {
		if a.Arch == arch.arch {
			out.Architectures = append(append(out.Architectures, a.Arch), a.SubArches...)
			break
		}
	}
	for i, call := range p.Syscalls {
		if call == nil {
			continue
		}
		names := slices.Clone(call.Names)
		if call.Name != "" {
			if len(names) != 0 {
				return nil, fmt.Errorf("seccomp profile: syscalls[%d]: both name and names: %w", i, errdefs.ErrInvalidArgument)
			}
			names = []string{call.Name}
		}
		if !ruleApplies(call, arch.name, bounding, kernel) {
			continue
		}
		rule := call.LinuxSyscall
		rule.Names = names
		out.Syscalls = append(out.Syscalls, rule)
	}
	return &out, nil
}

// ruleApplies evaluates a rule's includes (all must hold) and excludes
// (any excludes it).
func ruleApplies(call *seccomp.Syscall, arch string, bounding []string, kernel KernelVersion) bool {
	if ex := call.Excludes; ex != nil {
		if slices.Contains(ex.Arches, arch) {
			return false
		}
		for _, c := range ex.Caps {
			if slices.Contains(bounding, c) {
				return false
			}
		}
		if ex.MinKernel != nil && kernel.atLeast(ex.MinKernel.Kernel, ex.MinKernel.Major) {
			return false
		}
	}
	if in := call.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
		for _, c := range in.Caps {
			if !slices.Contains(bounding, c) {
				return false
			}
		}
		if in.MinKernel != nil && !kernel.atLeast(in.MinKernel.Kernel, in.MinKernel.Major) {
			return false
		}
	}
	return true
}
