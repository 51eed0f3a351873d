#!/usr/bin/env bash
# Shim memory and run-to-exit against containerd's shim, side by side:
#
#   CONTAINERD_BIN=DIR hack/bench/shim/run.sh [N_CONTAINERS] [RUNS] [RUNTIME] [RESTORE_N]
#
# RESTORE_N (default 100) running containers, one per group (pod), are also
# restored by a new Manager, timed from NewManager to Restore's return.
# CONTAINERD_BIN holds containerd, containerd-shim-runc-v2 and ctr, e.g.
#   GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
# Without it only cri-runtime is measured. containerd runs with its own
# root, state and socket in a temporary directory. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go build -o "$bin/cri-runtime-shim" ./cmd/cri-runtime-shim
go build -o "$bin/shimbench" ./hack/bench/shim
"$bin/shimbench" -shim "$bin/cri-runtime-shim" -containerd-bin "${CONTAINERD_BIN:-}" \
	-n "${1:-10}" -runs "${2:-30}" -runtime "${3:-runc}" -restore "${4:-100}"
