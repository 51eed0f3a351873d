#!/usr/bin/env bash
# Side-by-side cold pull + unpack benchmark: cri-runtime against containerd,
# same loopback registry, same images, same disk, in one run.
#
#   hack/bench/pull/run.sh [REPS]
#
# Images (generated once into $BENCH_DIR/images by genimage, then cached):
#   bench:6layer  ~300 MB of files in 6 gzip layers, ~12,000 files
#   bench:1g      ~1 GiB in 1 gzip layer, ~4,000 files
# containerd: $CONTAINERD_BIN (default: a containerd v2.4.2 built with
#   GOBIN=DIR go install -tags no_btrfs github.com/containerd/containerd/v2/cmd/{containerd,containerd-shim-runc-v2,ctr}@v2.4.2
#   then CONTAINERD_BIN=DIR), else Debian's containerd on PATH.
# Every run starts from an empty root, after sync and dropping the page cache.
# Two modes, each runtime given the same tools:
#   external  igzip (isal) or unpigz on PATH: both runtimes decompress gzip with it
#   go        both forced to decompress in process (CONTAINERD_DISABLE_IGZIP,
#             CONTAINERD_DISABLE_PIGZ, CRI_RUNTIME_DISABLE_EXTERNAL_GZIP)
#   durable   as external, with containerd's diff service set to sync_fs = true:
#             cri-runtime always syncs a layer before committing its snapshot,
#             containerd only when asked, so this is the like-for-like mode
# MODES="external go durable" by default.
set -euo pipefail
shopt -s inherit_errexit # a failed pull fails the run, also inside $(...)
cd "$(dirname "$0")/../../.."
REPS=${1:-3}
MODES=${MODES:-external go durable}
BENCH_DIR=${BENCH_DIR:-$PWD/hack/bench/pull/results}
CONTAINERD_BIN=${CONTAINERD_BIN:-}
mkdir -p "$BENCH_DIR"
ctrd=$(command -v containerd || true); ctr=$(command -v ctr || true)
if [ -n "$CONTAINERD_BIN" ]; then ctrd=$CONTAINERD_BIN/containerd; ctr=$CONTAINERD_BIN/ctr; fi
[ -x "$ctrd" ] || { echo "containerd not found (set CONTAINERD_BIN)" >&2; exit 1; }

go build -o "$BENCH_DIR/cri-runtime" ./cmd/cri-runtime
CGO_ENABLED=0 go build -o "$BENCH_DIR/cri-runtime-shim" ./cmd/cri-runtime-shim
go build -o "$BENCH_DIR/genimage" ./hack/bench/pull/genimage

# Registry on loopback.
port=$((20000 + RANDOM % 20000))
reg=$BENCH_DIR/registry
mkdir -p "$reg/data"
cat > "$reg/config.yml" <<EOC
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $reg/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOC
docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
regpid=$!
pids=("$regpid")
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

gen() { # tag layers size files
	local dir=$BENCH_DIR/images/$1
	[ -f "$dir/index.json" ] || "$BENCH_DIR/genimage" -out "$dir" -tag "$1" -layers "$2" -size "$3" -files "$4"
	skopeo copy --quiet --dest-tls-verify=false "oci:$dir:$1" "docker://127.0.0.1:$port/bench:$1"
}
gen 6layer 6 300MiB 12000
gen 1g 1 1GiB 4000

modeenv() {
	if [ "$mode" = go ]; then
		echo CONTAINERD_DISABLE_IGZIP=1 CONTAINERD_DISABLE_PIGZ=1 CRI_RUNTIME_DISABLE_EXTERNAL_GZIP=1
	else
		echo BENCH_MODE=external
	fi
}
fresh() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }

run_containerd() { # tag -> seconds
	local d=$BENCH_DIR/ctrd; rm -rf "$d"; mkdir -p "$d"
	cat > "$d/config.toml" <<EOC
version = 3
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins.'io.containerd.service.v1.diff-service']
  sync_fs = $([ "$mode" = durable ] && echo true || echo false)
EOC
	env $(modeenv) "$ctrd" --config "$d/config.toml" >"$d/log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
	[ -S "$d/containerd.sock" ] || { echo "containerd did not start:" >&2; cat "$d/log" >&2; exit 1; }
	fresh
	local t0; t0=$(now)
	"$ctr" -a "$d/containerd.sock" -n bench images pull --plain-http "127.0.0.1:$port/bench:$1" >/dev/null
	local t1; t1=$(now)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	umount -R "$d/root" 2>/dev/null || true; rm -rf "$d"
	echo "$t1 - $t0" | bc
}

run_ours() { # tag -> seconds
	local d=$BENCH_DIR/ours; rm -rf "$d"; mkdir -p "$d"
	env $(modeenv) "$BENCH_DIR/cri-runtime" serve --root "$d/root" --state "$d/state" --address "$d/mgmt.sock" \
		--cri-address "" --metrics-address "" >"$d/log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do [ -S "$d/mgmt.sock" ] && break; sleep 0.1; done
	[ -S "$d/mgmt.sock" ] || { echo "cri-runtime did not start:" >&2; cat "$d/log" >&2; exit 1; }
	fresh
	local t0; t0=$(now)
	"$BENCH_DIR/cri-runtime" --address "$d/mgmt.sock" -n bench pull --quiet "127.0.0.1:$port/bench:$1" >/dev/null
	local t1; t1=$(now)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	umount -R "$d/root" 2>/dev/null || true; rm -rf "$d"
	echo "$t1 - $t0" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-9s %-8s %-12s %s\n' mode image runtime "seconds (each run), median, MB/s of compressed bytes"
for mode in $MODES; do
for tag in 6layer 1g; do
	bytes=$(du -sb "$BENCH_DIR/images/$tag/blobs" | cut -f1)
	c=(); o=()
	for _ in $(seq "$REPS"); do c+=("$(run_containerd "$tag")"); o+=("$(run_ours "$tag")"); done
	cm=$(printf '%s\n' "${c[@]}" | median); om=$(printf '%s\n' "${o[@]}" | median)
	printf '%-9s %-8s %-12s %s  median %.2f s  %.1f MB/s\n' "$mode" "$tag" containerd "${c[*]}" "$cm" "$(echo "$bytes/1000000/$cm" | bc -l)"
	printf '%-9s %-8s %-12s %s  median %.2f s  %.1f MB/s\n' "$mode" "$tag" cri-runtime "${o[*]}" "$om" "$(echo "$bytes/1000000/$om" | bc -l)"
	printf '%-9s %-8s ratio (throughput cri-runtime / containerd): %.2f\n' "$mode" "$tag" "$(echo "$cm/$om" | bc -l)"
done
done
