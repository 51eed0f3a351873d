// Package spec translates an image config and a CRI container or pod sandbox
// config into an OCI runtime-spec: Container for a workload container, Sandbox
// for the pod's pause container.
//
// The translation is pure: it reads no file, asks the kernel nothing and keeps
// no state, so every rule is table-tested. What it needs from the host comes
// in as data, gathered by the caller once:
//
//   - Host (DetectHost): cgroup version, swap accounting, hugetlb, AppArmor,
//     the kernel's version, and the capabilities, oom_score_adj floor and
//     open-file ceiling of the daemon, which a container cannot exceed.
//   - UserDB (ReadUserDB): the image's /etc/passwd and /etc/group, read
//     inside the container's rootfs without following a symlink out of it,
//     bounded in size; parsed by ParsePasswd and ParseGroup.
//   - DeviceLookup (HostDevices): the device nodes behind a host path.
//   - the bytes of a Localhost seccomp profile (LocalhostProfilePath says
//     which file).
//
// Those three helpers (host.go, userdb_read.go, devices_host.go) are the only
// code here that touches the system. Host-side preparation stays with the
// caller too: creating a missing host path, resolving its symlinks, checking
// that the source of a bidirectional mount is shared, mounting the sandbox's
// /dev/shm and writing its hosts, hostname and resolv.conf files.
//
// Errors are errdefs classes, subject first: a bad request is InvalidArgument
// naming the CRI field ("linux.security_context.run_as_user: ..."); a request
// the host cannot serve (AppArmor on a kernel without it) is
// FailedPrecondition; user namespaces are NotImplemented.
//
// This package imports errdefs, runtime-spec, image-spec, the CRI types and
// the moby seccomp profile, nothing else of the project.
package spec
