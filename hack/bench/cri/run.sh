#!/usr/bin/env bash
# The pod start benchmark, side by side: containerd v2.4.2 and cri-runtime
# run at once, each with its own root, state and socket, the same CNI
# network (one conf file, one bridge, one IP allocation store: a bridge of
# its own, no masquerade), the same pause and busybox images from the same
# loopback registry (the images of hack/critest, through hosts.toml), and
# hack/bench/cri drives both with kubelet's client and calls, alternating
# the runtimes within each round, after the memory of each (daemon RSS and
# PSS, its shims' PSS) idle and with -mem-pods pods (50) running, read from
# the processes of the runtime's cgroup. Needs root; reuses hack/critest/lib.sh.
#
#   CONTAINERD_BIN=DIR hack/bench/cri/run.sh [podbench flags: -rounds 3 -n 50 ...]
#
# Environment:
#   CONTAINERD_BIN   a directory with containerd and containerd-shim-runc-v2
#                    v2.4.2 (default: containerd in PATH), e.g.
#                    GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
#   CRI_RUNTIME_BIN  a directory with cri-runtime and its shim (default: go
#                    build ./cmd/... here)
#   CRICTL           the crictl binary, for start and cleanup (default: built
#                    by hack/critest/build.sh into CRITEST_CACHE)
#   CRITEST_CACHE    as for hack/critest/run.sh (default ~/.cache/cri-runtime-critest)
#   BENCH_REPORT     directory for the table, the samples (JSON) and the
#                    runtimes' logs (default $CRITEST_CACHE/bench-cri)
#   BENCH_SUBNET     the pods' /24 (default 10.89.64.0/24) on bridge crbench0
#   CRI_RUNTIME_METRICS  cri-runtime's /metrics address (host:port): its
#                    per-phase histograms are saved in BENCH_REPORT at the end
#   CNI_BIN_DIR      the CNI plugins (default /usr/lib/cni, Debian's)
#   BENCH_RUNTIMES   the runtimes to run (default "containerd cri-runtime";
#                    one alone for profiling: no ratios then). NAME:DIR is
#                    cri-runtime with the binaries in DIR, named NAME: two
#                    builds compared, e.g. "before:DIR1 after:DIR2"
#   BENCH_KEEP=1     keep the work directory
#
# The markdown tables go to stdout and BENCH_REPORT/podbench.md.
set -euo pipefail
for v in CONTAINERD_BIN CRI_RUNTIME_BIN CRICTL CRITEST_CACHE BENCH_REPORT BUSYBOX; do
	[ -n "${!v:-}" ] && [ "${!v#/}" = "${!v}" ] && printf -v "$v" '%s' "$PWD/${!v}" # relative to the caller
done
cd "$(dirname "$0")/../../.."
[ "$(id -u)" = 0 ] || { echo "run.sh: the runtimes need root" >&2; exit 1; }

cache=${CRITEST_CACHE:-$HOME/.cache/cri-runtime-critest}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
report=${BENCH_REPORT:-$cache/bench-cri}
subnet=${BENCH_SUBNET:-10.89.64.0/24}
cni_bin=${CNI_BIN_DIR:-/usr/lib/cni}
bridge=crbench0
cni_network=crbench
# The images of hack/critest/images/catalogue.go.
sandbox_image=registry.k8s.io/pause:3.10.2
busybox_image=registry.k8s.io/e2e-test-images/busybox:1.29-2

if [ -z "${CRICTL:-}" ]; then
	hack/critest/build.sh "$cache"
	CRICTL=$cache/bin/crictl
fi
tools=$(cd "$(dirname "$CRICTL")" && pwd)
for t in "$tools/crictl" "$cni_bin/bridge" "$cni_bin/host-local" "$cni_bin/loopback"; do
	[ -x "$t" ] || { echo "run.sh: $t is missing (hack/critest/build.sh, hack/deps.sh)" >&2; exit 1; }
done
exec {run_lock}>"${TMPDIR:-/tmp}/cri-rt-bench.lock"
flock -n "$run_lock" || { echo "run.sh: another hack/bench/cri/run.sh is running on this machine" >&2; exit 1; }
ip link del "$bridge" 2>/dev/null || true
if ip -4 -o addr show | grep -q " ${subnet%.*/*}\."; then
	echo "run.sh: $subnet is in use on this machine: set BENCH_SUBNET" >&2
	exit 1
fi

base=$(mktemp -d "${TMPDIR:-/tmp}/crbench.XXXXXX")
work=$base
pids=()
cgroups_before=$(ls -d /sys/fs/cgroup/*/k8s.io 2>/dev/null || true)
# shellcheck source=hack/critest/lib.sh
. hack/critest/lib.sh
declare -A runtime_pids cpu_cgroups

# cpu_cgroup RUNTIME PID moves PID into a cgroup of its own (its children
# to come with it: shims, runc, CNI plugins) and sets cpu_file to the
# file of its CPU usage: the cost per pod in CPU time.
cpu_cgroup() {
	cpu_file=
	local dir root
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		root=/sys/fs/cgroup
	else
		root=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpuacct(,|$)/ {print $2; exit}' /proc/self/mounts)
	fi
	[ -n "$root" ] || return 0
	dir=$root/crbench-$1-$$
	mkdir "$dir" || return 0
	cpu_cgroups[$1]=$dir
	echo "$2" >"$dir/cgroup.procs" || return 0
	if [ "$root" = /sys/fs/cgroup ]; then cpu_file=$dir/cpu.stat; else cpu_file=$dir/cpuacct.usage; fi
}

# cpu_cgroups_remove moves what is left in those cgroups to the root
# one, and removes them.
cpu_cgroups_remove() {
	local dir p
	for dir in "${cpu_cgroups[@]}"; do
		while read -r p; do echo "$p" >"$(dirname "$dir")/cgroup.procs"; done <"$dir/cgroup.procs"
		rmdir "$dir"
	done
}

# bench_cleanup removes the pods of each runtime, keeps their logs, then
# runs lib.sh's cleanup over the whole work directory.
bench_cleanup() {
	local status=$? rt
	set +e
	# The bench first: it would go on making pods while they go.
	[ -n "${bench_pid:-}" ] && stop_pid "$bench_pid" && wait "$bench_pid" 2>/dev/null
	for rt in "${!runtime_pids[@]}"; do
		work=$base/$rt
		kill -0 "${runtime_pids[$rt]}" 2>/dev/null && crictl rmp -fa >/dev/null 2>&1
		cp "$work/runtime.log" "$report/$rt.log" 2>/dev/null
	done
	cpu_cgroups_remove 2>/dev/null
	work=$base runtime_pid=
	[ "${BENCH_KEEP:-}" = 1 ] && CRITEST_KEEP=1
	(exit "$status")
	cleanup
}
trap bench_cleanup EXIT
host_state_enter
mkdir -p "$report"
rm -f "$report"/{images.log,podbench.md,podbench.json,containerd.log,cri-runtime.log,metrics.txt}

busybox=$(fetch_busybox "$cache")
start_registry "$base/registry"
echo "--- registry on $registry; building and pushing the images" >&2
go test -count=1 -v -run '^TestMirror$' ./hack/critest/images \
	-args -registry "$registry" -hosts-dir "$base/hosts" -busybox "$busybox" >"$report/images.log" 2>&1 ||
	{ cat "$report/images.log" >&2; exit 1; }
write_cni_conf "$base/net.d"

# Each runtime in a work directory of its own; the CNI conf directory
# and the hosts.toml directory are the shared ones.
runtimes=${BENCH_RUNTIMES:-containerd cri-runtime}
endpoints=()
for spec in $runtimes; do
	runtime=${spec%%:*}
	work=$base/$runtime
	sock=$work/cri.sock
	mkdir -p "$work"
	ln -s "$base/net.d" "$work/net.d"
	ln -s "$base/hosts" "$work/hosts"
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$sock" "$sock" >"$work/crictl.yaml"
	echo "--- starting $runtime" >&2
	case "$spec" in
	containerd) start_containerd ;;
	cri-runtime) start_cri_runtime ;;
	*:*) CRI_RUNTIME_BIN=${spec#*:} start_cri_runtime ;;
	*) echo "run.sh: unknown runtime $runtime" >&2; exit 2 ;;
	esac
	runtime_pids[$runtime]=$runtime_pid
	endpoints+=(-runtime "$runtime=unix://$sock")
	cpu_cgroup "$runtime" "$runtime_pid"
	[ -n "$cpu_file" ] && endpoints+=(-cpu "$runtime=$cpu_file" -procs "$runtime=${cpu_cgroups[$runtime]}/cgroup.procs" -daemon "$runtime=$runtime_pid")
	wait_cri || { tail -50 "$work/runtime.log" >&2; exit 1; }
done

go build -o "$base/podbench" ./hack/bench/cri
first=${runtimes%% *}
{
	echo "Pod start, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, Linux $(uname -r), $(runc --version | head -1);"
	case " $runtimes " in *" containerd "*)
		echo "containerd $("${CONTAINERD_BIN:-$(dirname "$(command -v containerd)")}/containerd" --version | awk '{print $3}')," ;;
	esac
	echo "cri-runtime $(git describe --always --dirty 2>/dev/null || echo '?'); load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Latencies seen by kubelet's CRI client (k8s.io/cri-client), in ms; each ratio is a runtime's figure over the first's (${first%%:*})."
	echo
} >"$report/podbench.md"
# In the background, so that a signal to this script runs the cleanup at
# once, which stops it first.
"$base/podbench" "${endpoints[@]}" -pause "$sandbox_image" -image "$busybox_image" -dir "$base/kubelet" -json "$report/podbench.json" "$@" \
	>>"$report/podbench.md" &
bench_pid=$!
wait "$bench_pid"
bench_pid=
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)." >>"$report/podbench.md"
if [ -n "${CRI_RUNTIME_METRICS:-}" ]; then
	curl -fs "http://$CRI_RUNTIME_METRICS/metrics" | grep -E '^cri_runtime_(cri_create_phase|grpc)' >"$report/metrics.txt" || true
fi
cat "$report/podbench.md"
