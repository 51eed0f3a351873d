package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The sysctls a pod may set are those of the namespaces it owns (kubelet's
// list): kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* (the IPC
// namespace) and net.* (the network namespace).
var ipcSysctls = []string{"kernel.shm", "kernel.msg", "fs.mqueue."}

// ValidateSysctls checks a pod's sysctls: names without '+' (no sysctl
// names contain one; it could only be an injection), in a namespace the
// pod owns: net.* needs a pod network namespace, the IPC ones a pod IPC
// namespace. The name may use '/' for '.', as sysctl(8) allows.
func ValidateSysctls(sysctls map[string]string, hostNetwork, hostIPC bool) error {
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		field := fmt.Sprintf("linux.sysctls %q", k)
		if k == "" || strings.ContainsAny(k, "+=\x00 \t\n") || strings.Contains(k, "..") {
			return fmt.Errorf("%s: not a sysctl name: %w", field, errdefs.ErrInvalidArgument)
		}
		if v := sysctls[k]; strings.ContainsAny(v, "\x00\n") {
			return fmt.Errorf("%s: value %q has a NUL or newline: %w", field, v, errdefs.ErrInvalidArgument)
		}
		name := strings.ReplaceAll(k, "/", ".")
		switch {
		case strings.HasPrefix(name, "net."):
			if hostNetwork {
				return fmt.Errorf("%s: network sysctl in the host network namespace: %w", field, errdefs.ErrInvalidArgument)
			}
		case name == "kernel.sem" || hasAnyPrefix(name, ipcSysctls):
			if hostIPC {
				return fmt.Errorf("%s: IPC sysctl in the host IPC namespace: %w", field, errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("%s: not namespaced (only net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): %w", field, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
