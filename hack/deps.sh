#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test
# cri-runtime: Debian packages (runtimes, CNI plugins, a registry, protoc)
# and the Go modules. Run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(runc crun containernetworking-plugins busybox-static docker-registry skopeo protobuf-compiler isal pigz iproute2 iptables git curl bc)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "go is required (1.26)" >&2; exit 1; }
go mod download
