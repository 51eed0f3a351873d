#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test
# cri-runtime: Debian packages (runtimes, CNI plugins, a registry, protoc and
# the protobuf well-known types, CRIU) and the Go modules. Run as root. Safe to
# run again. hack/preflight.sh checks the result; hack/test.sh runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each package is here for a step of hack/test.sh or for the daemon:
#   runc crun criu              OCI runtimes and checkpoint/restore
#   containernetworking-plugins CNI plugins (bridge, host-local, portmap, loopback)
#   busybox-static              the static binary test images are built from
#   docker-registry skopeo      a real registry on loopback, and pushing to it
#   protobuf-compiler           protoc, for the generated-code check
#   libprotobuf-dev             google/protobuf/*.proto, which protoc imports
#   isal pigz                   igzip and unpigz, the external gzip decoders
#   e2fsprogs util-linux        mkfs.ext4 and losetup: small filesystems that fill up
#   iproute2 iptables           network namespaces and port mappings
#   git curl bc                 the scripts themselves
pkgs=(runc crun criu containernetworking-plugins busybox-static docker-registry skopeo
	protobuf-compiler libprotobuf-dev isal pigz e2fsprogs util-linux iproute2 iptables git curl bc)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# On a cgroup v1/v2 hybrid host, crun 1.8 refuses to run while the cgroup2
# hierarchy has controllers ("drop all controllers from cgroupv2"). Debian's
# hybrid layout leaves hugetlb there; mounting its v1 hierarchy moves it off
# cgroup2, which changes nothing for runc or systemd. Not kept over a reboot.
unified=/sys/fs/cgroup/unified
if [ -r "$unified/cgroup.controllers" ] && grep -qw hugetlb "$unified/cgroup.controllers" &&
	! grep -q ' /sys/fs/cgroup/hugetlb cgroup .*hugetlb' /proc/mounts; then
	mkdir -p /sys/fs/cgroup/hugetlb
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

command -v go >/dev/null || { echo "hack/deps.sh: go is required (1.26): install it from go.dev" >&2; exit 1; }
go mod download
