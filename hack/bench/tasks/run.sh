#!/usr/bin/env bash
# Containers through the daemons, cri-runtime against containerd, side by
# side on the same image from the same loopback registry:
#
#   CONTAINERD_BIN=DIR hack/bench/tasks/run.sh [N_CONTAINERS] [RUNS] [RESTORE_N] [RUNTIME]
#
# shim PSS per container with 1 and N running containers (run -d, ctr run
# -d), run-to-exit of /bin/true (run --rm, bare runc run, ctr run --rm) with
# where the time of ours goes, and the restore of RESTORE_N (default 100)
# running containers by a new daemon. CONTAINERD_BIN holds containerd,
# containerd-shim-runc-v2 and ctr, e.g.
#   GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
# Without it only cri-runtime is measured. Each daemon has its own root,
# state and socket in a temporary directory. Needs root, docker-registry,
# skopeo and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go build -o "$bin/" ./cmd/cri-runtime
CGO_ENABLED=0 go build -o "$bin/" ./cmd/cri-runtime-shim
go build -o "$bin/tasksbench" ./hack/bench/tasks
"$bin/tasksbench" -bin "$bin" -containerd-bin "${CONTAINERD_BIN:-}" \
	-n "${1:-10}" -runs "${2:-30}" -restore "${3:-100}" -runtime "${4:-runc}"
