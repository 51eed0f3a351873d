package spec

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// knownCapabilities lists every Linux capability by number (0 to 40, as of
// Linux 5.9). A name outside it is refused.
var knownCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities returns every capability this package knows, the set of
// a privileged container when Host.Capabilities is not known.
func AllCapabilities() []string { return slices.Clone(knownCapabilities) }

// CapabilitiesUpTo returns the capabilities numbered 0 to last, the set a
// kernel whose /proc/sys/kernel/cap_last_cap reads last supports.
func CapabilitiesUpTo(last int) []string {
	if last < 0 {
		return nil
	}
	return slices.Clone(knownCapabilities[:min(last+1, len(knownCapabilities))])
}

// DefaultCapabilities returns the capabilities of an unprivileged
// container: the 14 of Docker, which containerd 2.x's CRI plugin still
// grants.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
		"CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP",
		"CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// capName normalises a capability name of the request ("net_admin",
// "CAP_NET_ADMIN") and checks that it exists.
func capName(field, name string) (string, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(knownCapabilities, n) {
		return "", fmt.Errorf("%s %q: unknown capability: %w", field, name, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

func isAll(name string) bool {
	return strings.EqualFold(name, "ALL") || strings.EqualFold(name, "CAP_ALL")
}

// capabilities computes the bounding, permitted and effective set from the
// defaults and the request, in containerd's order: add ALL, drop ALL, then
// each added name, then each dropped one; so add [ALL] drop [CHOWN] is all
// but CHOWN and add [NET_ADMIN] drop [ALL] is NET_ADMIN alone. Ambient
// capabilities (add_ambient_capabilities) are also put in every other set,
// as the kernel requires.
func capabilities(c *runtime.Capability, defaults, all []string) (*specs.LinuxCapabilities, error) {
	const field = "linux.security_context.capabilities"
	set := slices.Clone(defaults)
	add, drop := c.GetAddCapabilities(), c.GetDropCapabilities()
	if slices.ContainsFunc(add, isAll) {
		set = slices.Clone(all)
	}
	if slices.ContainsFunc(drop, isAll) {
		set = nil
	}
	for i, a := range add {
		if isAll(a) {
			continue
		}
		n, err := capName(fmt.Sprintf("%s.add_capabilities[%d]", field, i), a)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(set, n) {
			set = append(set, n)
		}
	}
	for i, d := range drop {
		if isAll(d) {
			continue
		}
		n, err := capName(fmt.Sprintf("%s.drop_capabilities[%d]", field, i), d)
		if err != nil {
			return nil, err
		}
		set = slices.DeleteFunc(set, func(s string) bool { return s == n })
	}
	var ambient []string
	for i, a := range c.GetAddAmbientCapabilities() {
		n, err := capName(fmt.Sprintf("%s.add_ambient_capabilities[%d]", field, i), a)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ambient, n) {
			ambient = append(ambient, n)
		}
		if !slices.Contains(set, n) {
			set = append(set, n)
		}
	}
	return capSet(set, ambient), nil
}

// capSet is set as bounding, permitted and effective, and ambient as
// ambient and inheritable; nil sets are written as empty lists.
func capSet(set, ambient []string) *specs.LinuxCapabilities {
	if set == nil {
		set = []string{}
	}
	return &specs.LinuxCapabilities{
		Bounding:    slices.Clone(set),
		Permitted:   slices.Clone(set),
		Effective:   slices.Clone(set),
		Inheritable: slices.Clone(ambient),
		Ambient:     slices.Clone(ambient),
	}
}
