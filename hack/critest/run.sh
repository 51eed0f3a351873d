#!/usr/bin/env bash
# Runs the upstream CRI conformance suite (cri-tools critest) against a CRI
# runtime on this machine, offline: every image critest pulls is built here
# (hack/critest/images) and served by a docker-registry on loopback, which
# the runtime is told to use as the mirror of registry.k8s.io, k8s.gcr.io and
# gcr.io through hosts.toml files. Needs root.
#
#   hack/critest/run.sh containerd|cri-runtime
#
# Environment:
#   CRITEST_CACHE    where build.sh puts critest, crictl and ginkgo, and the
#                    busybox is kept (default ~/.cache/cri-runtime-critest)
#   CRITEST          the critest binary (default: built by build.sh); crictl
#                    and ginkgo are taken from beside it
#   CONTAINERD_BIN   for containerd: a directory with containerd and
#                    containerd-shim-runc-v2 (default: containerd in PATH)
#   CRI_RUNTIME_BIN  for cri-runtime: a directory with cri-runtime and its
#                    shim (default: go build ./cmd/... here)
#   CRITEST_PARALLEL ginkgo nodes (default 2, one a core: the suite takes about
#                    a minute; serial specs run alone at the end anyway)
#   CRITEST_FOCUS    a ginkgo focus regexp, to run some specs only
#   CRITEST_REPORT   directory for the log, JUnit report and summary
#                    (default $CRITEST_CACHE/report-RUNTIME)
#   CRITEST_SUBNET   the pods' /24 (default 10.89.0.0/24) on bridge critest0
#   CNI_BIN_DIR      the CNI plugins (default /usr/lib/cni, Debian's)
#   CRITEST_UPSTREAM_FALLBACK=1  let the runtime ask the upstream registries
#                    for what the mirror lacks (a machine with internet):
#                    the spec pinned to an upstream digest then runs
#   CRITEST_KEEP=1   keep the work directory (configs, logs, runtime root)
#
# The last line is "critest: N passed, N failed, N skipped"; the exit status
# is critest's.
set -euo pipefail
for v in CRITEST CRITEST_CACHE CRITEST_REPORT CONTAINERD_BIN CRI_RUNTIME_BIN BUSYBOX; do
	[ -n "${!v:-}" ] && [ "${!v#/}" = "${!v}" ] && printf -v "$v" '%s' "$PWD/${!v}" # relative to the caller
done
cd "$(dirname "$0")/../.."

runtime=${1:-}
case "$runtime" in
containerd | cri-runtime) ;;
*)
	echo "usage: hack/critest/run.sh containerd|cri-runtime" >&2
	exit 2
	;;
esac
[ "$(id -u)" = 0 ] || { echo "run.sh: the runtime needs root" >&2; exit 1; }

# The specs not run, one entry each, with why. ginkgo matches each regexp
# against the spec's full text ("[k8s.io] Security Context ...").
skips=(
	# NRI: the runtime is run without an NRI socket (critest --nri-socket)
	'\[k8s\.io\] NRI'
	# AppArmor: this kernel has none (no /sys/kernel/security/apparmor)
	'\[k8s\.io\] AppArmor'
	# User namespaces: no runtime handler here supports them (runc 1.1.5);
	# a later issue
	'UserNamespaces'
	# Benchmarks: timings, not conformance (critest -benchmark runs them)
	'benchmark'
)
if [ "${CRITEST_UPSTREAM_FALLBACK:-}" != 1 ]; then
	# Pinned to the digest of the upstream image: nothing built here can have
	# it, so only the upstream registry can serve it (see Unmirrorable in
	# hack/critest/images/catalogue.go).
	skips+=('public image with digest should be pulled and removed')
fi

cache=${CRITEST_CACHE:-$HOME/.cache/cri-runtime-critest}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
report=${CRITEST_REPORT:-$cache/report-$runtime}
parallel=${CRITEST_PARALLEL:-2}
subnet=${CRITEST_SUBNET:-10.89.0.0/24}
cni_bin=${CNI_BIN_DIR:-/usr/lib/cni}
bridge=critest0
# Must be the SandboxImage of hack/critest/images/catalogue.go.
sandbox_image=registry.k8s.io/pause:3.10.2

if [ -z "${CRITEST:-}" ]; then
	hack/critest/build.sh "$cache"
	CRITEST=$cache/bin/critest
fi
tools=$(cd "$(dirname "$CRITEST")" && pwd)
for t in "$CRITEST" "$tools/crictl" "$tools/ginkgo" "$cni_bin/bridge" "$cni_bin/portmap" "$cni_bin/host-local" "$cni_bin/loopback"; do
	[ -x "$t" ] || { echo "run.sh: $t is missing (hack/critest/build.sh, hack/deps.sh)" >&2; exit 1; }
done
command -v docker-registry >/dev/null || { echo "run.sh: docker-registry is missing (hack/deps.sh)" >&2; exit 1; }
# One run at a time on the machine: the bridge, the host ports critest maps
# (12000-12003) are fixed. Holding the lock, a bridge of ours left by a run
# that was killed can go.
exec {run_lock}>"${TMPDIR:-/tmp}/cri-rt-critest.lock"
flock -n "$run_lock" || { echo "run.sh: another run.sh is running on this machine" >&2; exit 1; }
ip link del "$bridge" 2>/dev/null || true
if ip -4 -o addr show | grep -q " ${subnet%.*/*}\."; then
	echo "run.sh: $subnet is in use on this machine: set CRITEST_SUBNET" >&2
	exit 1
fi

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/critest.XXXXXX")
sock=$work/cri.sock
pids=()            # what this script started, stopped in reverse
cgroups_before=$(ls -d /sys/fs/cgroup/*/k8s.io 2>/dev/null || true)
# shellcheck source=hack/critest/lib.sh
. hack/critest/lib.sh
trap cleanup EXIT
host_state_enter
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$sock" "$sock" >"$work/crictl.yaml"
mkdir -p "$report"
rm -f "$report"/{images.log,critest.log,junit.xml,summary.txt,runtime.log}

busybox=$(fetch_busybox "$cache")
start_registry "$work/registry"
echo "--- registry on $registry; building and pushing the images"
mirror_args=(-registry "$registry" -hosts-dir "$work/hosts" -busybox "$busybox")
[ "${CRITEST_UPSTREAM_FALLBACK:-}" = 1 ] && mirror_args+=(-upstream-fallback)
go test -count=1 -v -run '^TestMirror$' ./hack/critest/images -args "${mirror_args[@]}" >"$report/images.log" 2>&1 ||
	{ cat "$report/images.log" >&2; exit 1; }
write_cni_conf "$work/net.d"

echo "--- starting $runtime"
case "$runtime" in
containerd) start_containerd ;;
cri-runtime) start_cri_runtime ;;
esac
wait_cri || { tail -50 "$work/runtime.log" >&2; exit 1; }
crictl version

echo "--- critest, $parallel nodes (log: $report/critest.log)"
skip_args=()
for s in "${skips[@]}"; do skip_args+=("-ginkgo.skip=$s"); done
focus_args=()
[ -n "${CRITEST_FOCUS:-}" ] && focus_args=("-ginkgo.focus=$CRITEST_FOCUS")
status=0
PATH=$tools:$PATH "$CRITEST" \
	-runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" -config "$work/crictl.yaml" \
	-parallel "$parallel" "${skip_args[@]}" "${focus_args[@]}" \
	-ginkgo.junit-report "$report/junit.xml" -ginkgo.timeout 40m -ginkgo.no-color \
	>"$report/critest.log" 2>&1 || status=$?
summarize "$report/critest.log" "$(($(date +%s) - start))" | tee "$report/summary.txt"
exit "$status"
