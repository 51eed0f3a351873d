#!/usr/bin/env bash
# Every benchmark against containerd in one run, into one report:
#
#   CONTAINERD_BIN=DIR hack/bench/run.sh [OUT_DIR]
#
# CONTAINERD_BIN holds containerd, containerd-shim-runc-v2 and ctr v2.4.2:
#   GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
# OUT_DIR (default hack/bench/results/<UTC date and time>) gets each
# bench's output and report.md, all of them in order:
#   1. pod start through the CRI, sequential and 20 at once, teardown,
#      ListContainers with 100 pods, CPU per pod, daemon and shim memory
#      idle and with 50 pods (hack/bench/cri/run.sh);
#   2. shims and tasks through the daemons: shim PSS per container,
#      run-to-exit, a restart with 100 running containers
#      (hack/bench/tasks/run.sh);
#   3. cold pull and unpack of realistic images, ~300 MB and ~1 GiB
#      (hack/bench/pull/run.sh, MODES as there; default "external");
#   4. the metadata store: GC pause and lock hold under load
#      (go test -bench in pkg/meta).
# BENCH_ONLY="cri tasks pull meta" runs a part. The machine should be
# otherwise idle: each bench alternates the runtimes, so that load weighs
# on both alike, but noise still widens the spread.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "hack/bench/run.sh: the runtimes need root" >&2; exit 1; }
: "${CONTAINERD_BIN:?set CONTAINERD_BIN to a directory with containerd, containerd-shim-runc-v2 and ctr v2.4.2}"
CONTAINERD_BIN=$(cd "$CONTAINERD_BIN" && pwd)
export CONTAINERD_BIN
out=${1:-hack/bench/results/$(date -u +%Y%m%dT%H%MZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
only=${BENCH_ONLY:-cri tasks pull meta}

section() { # section NAME TITLE COMMAND...: runs COMMAND, its stdout to OUT/NAME.txt
	local name=$1 title=$2
	shift 2
	case " $only " in *" $name "*) ;; *) return 0 ;; esac
	echo "--- $title" >&2
	local t0=$SECONDS
	"$@" >"$out/$name.txt" 2>"$out/$name.log" || { tail -30 "$out/$name.log" >&2; echo "hack/bench/run.sh: $name failed" >&2; exit 1; }
	{
		echo "## $title"
		echo
		echo "\`$*\` ($((SECONDS - t0)) s)"
		echo
		echo '```'
		cat "$out/$name.txt"
		echo '```'
		echo
	} >>"$out/report.md"
}

{
	echo "# cri-runtime against containerd $("$CONTAINERD_BIN/containerd" --version | awk '{print $3}')"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), cri-runtime $(git describe --always --dirty 2>/dev/null || echo '?'),"
	echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(runc --version | head -1),"
	echo "load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
} >"$out/report.md"

section cri "Pod start, teardown, lists, CPU and memory through the CRI" \
	env BENCH_REPORT="$out/cri" hack/bench/cri/run.sh -rounds "${BENCH_ROUNDS:-3}"
section tasks "Shims and tasks through the daemons" hack/bench/tasks/run.sh 10 30 100
section pull "Cold pull and unpack" env MODES="${MODES:-external}" BENCH_DIR="${BENCH_PULL_DIR:-hack/bench/pull/results}" \
	hack/bench/pull/run.sh "${BENCH_PULL_REPS:-3}"
section meta "Metadata store: GC pause and lock hold" \
	bash -c "go test -run '^\$' -bench 'BenchmarkGC' -benchtime 200x ./pkg/meta/ && go test -run '^\$' -bench 'BenchmarkInterlock' -benchtime 3s ./pkg/meta/"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)." >>"$out/report.md"
echo "--- $out/report.md" >&2
cat "$out/report.md"
