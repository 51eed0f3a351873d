#!/usr/bin/env bash
# Every benchmark against containerd in one run, into one report:
#
#   CONTAINERD_BIN=DIR hack/bench/run.sh [OUT_DIR]
#
# CONTAINERD_BIN holds containerd, containerd-shim-runc-v2 and ctr v2.4.2:
#   GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
# OUT_DIR (default hack/bench/results/<UTC date and time>) gets each
# bench's output and log; the report, the targets first and then every
# bench's output in order, goes to docs/benchmarks.md (BENCH_DOC):
#   1. pod start through the CRI, sequential and 20 at once, teardown,
#      ListContainers with 100 pods, CPU per pod, daemon and shim memory
#      idle and with 50 pods (hack/bench/cri/run.sh);
#   2. shims and tasks through the daemons: shim PSS per container,
#      run-to-exit, a restart with 100 running containers
#      (hack/bench/tasks/run.sh);
#   3. cold pull and unpack of realistic images, ~300 MB and ~1 GiB
#      (hack/bench/pull/run.sh, MODES as there; default "external durable",
#      BENCH_PULL_REPS runs of each, default 5);
#   4. the metadata store: GC pause and lock hold under load
#      (go test -bench in pkg/meta).
# BENCH_ONLY="cri tasks pull meta" runs a part; the report takes the
# other parts from an earlier run into the same OUT_DIR. The machine should be
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
doc=${BENCH_DOC:-docs/benchmarks.md}
mkdir -p "$(dirname "$doc")"

section() { # section NAME TITLE COMMAND...: runs COMMAND, its stdout to OUT/NAME.txt
	local name=$1 title=$2
	shift 2
	local took
	case " $only " in
	*" $name "*)
		echo "--- $title" >&2
		local t0=$SECONDS
		"$@" >"$out/$name.txt" 2>"$out/$name.log" || { tail -30 "$out/$name.log" >&2; echo "hack/bench/run.sh: $name failed" >&2; exit 1; }
		took="$((SECONDS - t0)) s"
		;;
	*)
		# Not run now: the output of an earlier run into OUT_DIR, if any.
		[ -s "$out/$name.txt" ] || return 0
		took="an earlier run, $(date -u -r "$out/$name.txt" +%H:%MZ)"
		;;
	esac
	{
		echo "## $title"
		echo
		local cmd="$*"
		echo "\`${cmd//$out/OUT_DIR}\` ($took)"
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
	echo "Made by \`CONTAINERD_BIN=DIR hack/bench/run.sh\`, both runtimes on this machine in the same run, taking turns."
	echo "The pods are kubelet's (no shared PID namespace): containerd runs a pause container in each, cri-runtime none"
	echo "(its default \`[cri] drop_infra_container\`, as CRI-O's \`drop_infra_ctr\`)."
} >"$out/report.md"

section cri "Pod start, teardown, lists, CPU and memory through the CRI" \
	env BENCH_REPORT="$out/cri" hack/bench/cri/run.sh -rounds "${BENCH_ROUNDS:-3}"
section tasks "Shims and tasks through the daemons" hack/bench/tasks/run.sh 10 30 100
export BENCH_DIR=${BENCH_PULL_DIR:-hack/bench/pull/results} # its images, generated once
section pull "Cold pull and unpack" env MODES="${MODES:-external durable}" hack/bench/pull/run.sh "${BENCH_PULL_REPS:-5}"
section meta "Metadata store: GC pause and lock hold" \
	bash -c "go test -run '^\$' -bench 'BenchmarkGC' -benchtime 200x ./pkg/meta/ && go test -run '^\$' -bench 'BenchmarkInterlock' -benchtime 3s ./pkg/meta/"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)." >>"$out/report.md"

# cell FILE ROW COLUMN: a cell of a markdown table row of FILE, trimmed.
cell() { awk -F'|' -v row="$2" -v col="$3" '{ r = $2; gsub(/^ +| +$/, "", r) } r == row { v = $col; gsub(/^ +| +$/, "", v); print v; exit }' "$1" 2>/dev/null; }
# target LABEL GOAL OURS THEIRS RATIO: a row of the targets table.
target() { echo "| $1 | $2 | ${3:--} | ${4:--} | ${5:--} |"; }
{
	head -6 "$out/report.md"
	echo
	echo "## Targets"
	echo
	echo "Each figure of cri-runtime, containerd's in the same run, and the ratio (ours / theirs, throughput: theirs / ours)."
	echo
	echo "| figure | target | cri-runtime | containerd | ratio |"
	echo "| --- | --- | ---: | ---: | ---: |"
	pb=$out/cri/podbench.md
	for row in "pod start" "pod start, 20 at once"; do
		target "$row p50 (ms)" "≤ 0.6×" "$(cell "$pb" "$row" 4)" "$(cell "$pb" "$row" 3)" "$(cell "$pb" "$row" 5)"
		target "$row p99 (ms)" "≤ 0.6×" "$(cell "$pb" "$row" 7)" "$(cell "$pb" "$row" 6)" "$(cell "$pb" "$row" 8)"
	done
	for row in "CreateContainer + StartContainer" "ExecSync (true), running pod" "ListContainers, 100 pods"; do
		target "$row p50 (ms)" "" "$(cell "$pb" "$row" 4)" "$(cell "$pb" "$row" 3)" "$(cell "$pb" "$row" 5)"
	done
	for row in "daemon RSS, idle" "daemon RSS, 50 pods" "shims PSS, 50 pods"; do
		target "$row (MiB)" "" "$(cell "$pb" "$row" 4)" "$(cell "$pb" "$row" 3)" "$(cell "$pb" "$row" 5)"
	done
	row="per pod (daemon growth + shims)"
	target "memory $row (MiB)" "≤ ⅓" "$(cell "$pb" "$row" 4)" "$(cell "$pb" "$row" 3)" "$(cell "$pb" "$row" 5)"
	if [ -f "$out/pull.txt" ]; then
		while read -r mode tag ratio; do
			target "cold pull + unpack, $tag ($mode), throughput" "≥ 1.5×" \
				"$(awk -v m="$mode" -v t="$tag" '$1 == m && $2 == t && $3 == "cri-runtime" {print $(NF-1), "MB/s"}' "$out/pull.txt")" \
				"$(awk -v m="$mode" -v t="$tag" '$1 == m && $2 == t && $3 == "containerd" {print $(NF-1), "MB/s"}' "$out/pull.txt")" "$ratio"
		done < <(awk '/ratio \(throughput/ {print $1, $2, $NF}' "$out/pull.txt")
	fi
	if [ -f "$out/tasks.txt" ]; then
		target "shim PSS per container, 10 containers a shim each" "" \
			"$(grep -o 'ours / containerd.s: [0-9.]* (a shim each)' "$out/tasks.txt" | awk '{print $4}') of containerd's" "" ""
		target "restart to ready, 100 running containers (ms)" "≤ 2 s" \
			"$(sed -n 's/^restore: .*all listed: \([0-9]*\) ms.*/\1/p' "$out/tasks.txt")" "" ""
	fi
	if [ -f "$out/meta.txt" ]; then
		target "GC pause max, 10,000 blobs, 1,000 images (ms)" "" \
			"$(awk '/^BenchmarkGC-/ {for (i = 1; i < NF; i++) if ($(i+1) == "pause-max-ms") print $i}' "$out/meta.txt")" "" ""
	fi
	echo
	tail -n +7 "$out/report.md"
} >"$doc"
echo "--- $doc" >&2
cat "$doc"
