#!/usr/bin/env bash
# Checks, before any test runs, that this machine has every tool, file and
# kernel feature hack/test.sh needs, and names each one that is missing with
# the package that brings it. hack/deps.sh installs them all.
set -uo pipefail
missing=()
need_cmd() { # command package
	command -v "$1" >/dev/null 2>&1 || missing+=("command $1 (Debian package $2)")
}
need_file() { # path package
	[ -e "$1" ] || missing+=("file $1 (Debian package $2)")
}
need_cmd go "Go 1.26, from go.dev"
need_cmd git git
need_cmd protoc protobuf-compiler
need_file /usr/include/google/protobuf/timestamp.proto libprotobuf-dev
need_file /usr/include/google/protobuf/any.proto libprotobuf-dev
need_cmd runc runc
need_cmd crun crun
need_cmd criu criu
need_cmd busybox busybox-static
need_cmd docker-registry docker-registry
need_cmd skopeo skopeo
need_cmd igzip isal
need_cmd unpigz pigz
need_cmd mkfs.ext4 e2fsprogs
need_cmd losetup util-linux
need_cmd ip iproute2
need_cmd iptables iptables
need_file /usr/lib/cni/bridge containernetworking-plugins
need_file /usr/lib/cni/host-local containernetworking-plugins
need_file /usr/lib/cni/portmap containernetworking-plugins
need_file /usr/lib/cni/loopback containernetworking-plugins
busybox_path=$(command -v busybox 2>/dev/null) &&
	[[ "$(LC_ALL=C ldd "$busybox_path" 2>&1)" != *"not a dynamic"* ]] &&
	missing+=("a static busybox, not the dynamic one at $busybox_path (Debian package busybox-static)")
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || missing+=("kernel support for overlayfs (modprobe overlay)")
if [ ${#missing[@]} -gt 0 ]; then
	echo "hack/preflight.sh: this machine lacks what the tests need (hack/deps.sh installs the packages):" >&2
	printf '  - %s\n' "${missing[@]}" >&2
	exit 1
fi
echo "preflight: every tool the tests need is here"
