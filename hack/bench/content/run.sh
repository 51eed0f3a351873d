#!/bin/sh
# Compares the ingest throughput of the local content store with dd writing
# the same bytes to the same disk, both ending in an fsync.
#
#   hack/bench/content/run.sh            # 1 GiB, 3 rounds
#   SIZE_MB=256 ROUNDS=5 BENCH_DIR=/some/disk hack/bench/content/run.sh
#
# The work directory is $BENCH_DIR, else a directory under the system temp
# dir unless that is tmpfs, else one under the repository (same disk as the
# working tree). The source is read once before timing so that both dd and
# the ingest read it from the page cache; each round runs dd and the ingest
# in turn after a sync, so neither pays for the other's dirty pages.
set -eu

repo=$(cd "$(dirname "$0")/../../.." && pwd)
size_mb=${SIZE_MB:-1024}
rounds=${ROUNDS:-3}

if [ -n "${BENCH_DIR:-}" ]; then
	parent=$BENCH_DIR
elif [ "$(stat -f -c %T "${TMPDIR:-/tmp}")" != tmpfs ]; then
	parent=${TMPDIR:-/tmp}
else
	parent=$repo
fi
work=$(mktemp -d "$parent/bench-content.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

echo "work dir: $work ($(df -P "$work" | awk 'NR==2 {print $1}'), $(stat -f -c %T "$work"))"
(cd "$repo" && go build -o "$work/ingest" ./hack/bench/content)
head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$work/src"
cat "$work/src" >/dev/null
dgst="sha256:$(sha256sum "$work/src" | cut -d' ' -f1)"
bytes=$((size_mb * 1024 * 1024))

now() { date +%s.%N; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

dd_times=""
go_times=""
i=1
while [ "$i" -le "$rounds" ]; do
	sync
	t0=$(now)
	dd if="$work/src" of="$work/dd.out" bs=1M conv=fsync status=none
	t1=$(now)
	rm -f "$work/dd.out"
	dd_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	sync
	go_s=$("$work/ingest" -root "$work/store" -src "$work/src" -digest "$dgst")
	echo "round $i: dd $(mbps "$dd_s") MB/s, ingest $(mbps "$go_s") MB/s"
	dd_times="$dd_times $dd_s"
	go_times="$go_times $go_s"
	i=$((i + 1))
done

median() { echo "$@" | tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
dd_med=$(median $dd_times)
go_med=$(median $go_times)
echo "median of $rounds rounds, $size_mb MiB:"
echo "  dd bs=1M conv=fsync: $(mbps "$dd_med") MB/s"
echo "  content ingest:      $(mbps "$go_med") MB/s"
awk -v d="$dd_med" -v g="$go_med" 'BEGIN { printf "  ratio ingest/dd:     %.2f\n", d / g }'
