# The steps of hack/critest/run.sh, sourced by it (and by
# hack/bench/cri/run.sh): its variables (work, sock, report, pids, runtime,
# subnet, bridge, cni_bin, sandbox_image, tools, cgroups_before) are set
# before. cni_network (default critest) names the CNI network;
# CRI_RUNTIME_METRICS is the [metrics] address of cri-runtime (default none).

crictl() { "$tools/crictl" --config "$work/crictl.yaml" "$@"; }

# fetch_busybox CACHE prints the path of a dynamic busybox, taken from
# Debian's busybox package (apt-get download, kept in CACHE). Debian's
# busybox-static runs its applets itself whatever PATH holds
# (FEATURE_SH_STANDALONE), so in an image built on it masking /bin/ls does
# not stop sh from running ls, as critest's MaskedPaths spec expects.
fetch_busybox() {
	local dir=$1/busybox
	if [ -n "${BUSYBOX:-}" ]; then
		echo "$BUSYBOX"
		return
	fi
	if [ ! -x "$dir/bin/busybox" ]; then
		rm -rf "$dir" && mkdir -p "$dir"
		(cd "$dir" && { apt-get download busybox >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null && apt-get download busybox >/dev/null; }; }) ||
			{ echo "run.sh: apt-get download busybox failed" >&2; return 1; }
		dpkg-deb -x "$dir"/busybox_*.deb "$dir/root"
		mkdir -p "$dir/bin" && mv "$dir/root/bin/busybox" "$dir/bin/busybox"
		rm -rf "$dir/root" "$dir"/busybox_*.deb
	fi
	echo "$dir/bin/busybox"
}

# start_registry DIR starts docker-registry on a free loopback port with its
# storage in DIR and sets registry to its host:port.
start_registry() {
	local dir=$1 port
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$port" | grep -q . && continue
		cat >"$dir/config.yml" <<-EOF
			version: 0.1
			log: {level: warn, accesslog: {disabled: true}}
			storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}
			http: {addr: 127.0.0.1:$port}
		EOF
		docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
		pids+=("$!")
		for _ in $(seq 100); do
			if curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; then
				registry=127.0.0.1:$port
				return
			fi
			kill -0 "$!" 2>/dev/null || break
			sleep 0.1
		done
	done
	echo "run.sh: docker-registry did not start: $(tail -3 "$dir/log")" >&2
	return 1
}

# write_cni_conf DIR writes the pods' network: a bridge of its own on
# $subnet, no masquerade (nothing leaves the machine), port mappings.
write_cni_conf() {
	mkdir -p "$1"
	cat >"$1/10-critest.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "${cni_network:-critest}",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$bridge",
		      "isGateway": true,
		      "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local",
		        "ranges": [[{"subnet": "$subnet"}]],
		        "routes": [{"dst": "0.0.0.0/0"}],
		        "dataDir": "$work/cni-ipam"
		      }
		    },
		    {"type": "portmap", "capabilities": {"portMappings": true}}
		  ]
		}
	EOF
}

# start_containerd runs containerd with everything of its own under $work:
# root, state (the pods' netns too), sockets, runc's state, config.
# restrict_oom_score_adj: root here may lack CAP_SYS_RESOURCE, and then runc
# cannot give the pause its oom_score_adj of -998 (EACCES); containerd then
# keeps scores at or above its own.
start_containerd() {
	local bin=${CONTAINERD_BIN:-$(dirname "$(command -v containerd)")}
	[ -x "$bin/containerd" ] && [ -x "$bin/containerd-shim-runc-v2" ] ||
		{ echo "run.sh: containerd and containerd-shim-runc-v2 not in ${bin:-PATH} (set CONTAINERD_BIN)" >&2; return 1; }
	cat >"$work/config.toml" <<-EOF
		version = 3
		root = "$work/root"
		state = "$work/state"
		disabled_plugins = ["io.containerd.nri.v1.nri"]
		[grpc]
		  address = "$sock"
		[ttrpc]
		  address = "$sock.ttrpc"
		[plugins.'io.containerd.internal.v1.opt']
		  path = "$work/opt"
		[plugins.'io.containerd.cri.v1.images']
		  snapshotter = "overlayfs"
		  [plugins.'io.containerd.cri.v1.images'.pinned_images]
		    sandbox = "$sandbox_image"
		  [plugins.'io.containerd.cri.v1.images'.registry]
		    config_path = "$work/hosts"
		[plugins.'io.containerd.cri.v1.runtime']
		  netns_mounts_under_state_dir = true
		  restrict_oom_score_adj = true
		  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
		    runtime_type = "io.containerd.runc.v2"
		    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
		      Root = "$work/runc"
		  [plugins.'io.containerd.cri.v1.runtime'.cni]
		    bin_dirs = ["$cni_bin"]
		    conf_dir = "$work/net.d"
		[plugins.'io.containerd.grpc.v1.cri']
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
	EOF
	PATH=$bin:$PATH "$bin/containerd" --config "$work/config.toml" >"$work/runtime.log" 2>&1 &
	pids+=("$!")
	runtime_pid=$!
}

# start_cri_runtime runs our daemon the same way. The [cri] and [cni] keys
# are those the CRI server is to read. Its pods' netns and libcni's cache
# are its own too: at start a daemon tears down and removes every netns in
# its netns_dir that no pod of its own holds, so another daemon on the
# machine with the default netns_dir would take this one's.
start_cri_runtime() {
	local bin=${CRI_RUNTIME_BIN:-}
	if [ -z "$bin" ]; then
		bin=$work/bin
		CGO_ENABLED=0 go build -o "$bin/" ./cmd/... # static, as the README builds them
	fi
	cat >"$work/config.toml" <<-EOF
		root = "$work/root"
		state = "$work/state"
		[grpc]
		  address = "$work/mgmt.sock"
		[metrics]
		  address = "${CRI_RUNTIME_METRICS:-}"
		[image]
		  config_path = "$work/hosts"
		[cri]
		  address = "$sock"
		  sandbox_image = "$sandbox_image"
		  stream_address = "127.0.0.1:0"
		[cni]
		  conf_dir = "$work/net.d"
		  bin_dirs = ["$cni_bin"]
		  netns_dir = "$work/netns"
		  cache_dir = "$work/cni-cache"
	EOF
	PATH=$bin:$PATH "$bin/cri-runtime" serve --config "$work/config.toml" >"$work/runtime.log" 2>&1 &
	pids+=("$!")
	runtime_pid=$!
}

# wait_cri waits until the runtime answers on its CRI socket.
wait_cri() {
	for _ in $(seq 300); do
		crictl version >/dev/null 2>&1 && return 0
		kill -0 "$runtime_pid" 2>/dev/null || { echo "run.sh: $runtime exited" >&2; return 1; }
		sleep 0.1
	done
	echo "run.sh: $runtime does not answer on $sock" >&2
	return 1
}

# summarize LOG SECONDS prints the counts of ginkgo's closing lines, the
# failed specs, and the closing line CI reads.
summarize() {
	local log=$1 secs=$2 line passed failed skipped pending
	line=$(grep -E '^(SUCCESS|FAIL)! .* Passed \| [0-9]+ Failed' "$log" | tail -1 || true)
	echo "--- critest $runtime: $(grep -E '^Ran [0-9]+ of [0-9]+ Specs' "$log" | tail -1 || echo 'no specs ran')"
	passed=$(sed -n 's/.* \([0-9]*\) Passed.*/\1/p' <<<"$line")
	failed=$(sed -n 's/.* \([0-9]*\) Failed.*/\1/p' <<<"$line")
	pending=$(sed -n 's/.* \([0-9]*\) Pending.*/\1/p' <<<"$line")
	skipped=$(sed -n 's/.* \([0-9]*\) Skipped.*/\1/p' <<<"$line")
	if [ "${failed:-0}" != 0 ]; then
		echo "failed specs:"
		sed -n '/^Summarizing [0-9]* Failure/,/^Ran /p' "$log" | grep -E '^\s*\[(FAIL|TIMEDOUT|PANICKED|INTERRUPTED)\]' | sed 's/^/  /'
	fi
	echo "$runtime, wall time ${secs}s, $parallel nodes"
	echo "critest: ${passed:-0} passed, ${failed:-0} failed, $((${skipped:-0} + ${pending:-0})) skipped"
}

# cleanup stops what run.sh started and removes what the runtime left, even
# when it was killed first: pods, shims, containers (through runc's state,
# which knows their processes and cgroups), mounts and netns under $work,
# the cgroup parent, the bridge and the network's portmap rules; then the
# host state the CNI plugins change (host_state_leave).
cleanup() {
	local status=$? p i f ids
	set +e
	if [ -n "${runtime_pid:-}" ] && kill -0 "$runtime_pid" 2>/dev/null; then
		crictl rmp -fa >/dev/null 2>&1
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
	# The IDs of the pods and containers, from the runtime's directories.
	ids=$(find "$work" -xdev -maxdepth 6 -type d -regextype egrep -regex '.*/[0-9a-f]{64}' -printf '%f\n' 2>/dev/null | sort -u)
	for p in $(grep -lzF -- "$work/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		stop_pid "$p" # a shim of ours, found by the socket path in its arguments
	done
	# runc's state of a container: ROOT/ID/state.json (containerd:
	# runc/NS/ID; cri-runtime: state/tasks/NS/POD/ID/root/ID).
	find "$work" -xdev -maxdepth 10 -name state.json -regextype egrep -regex '.*/[0-9a-f]{64}/state\.json' 2>/dev/null | while read -r f; do
		runc --root "$(dirname "$(dirname "$f")")" delete --force "$(basename "$(dirname "$f")")" 2>/dev/null
	done
	grep -F " $work/" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	# The containers' cgroups (runc leaves one when its processes are still
	# dying), then the runtime's cgroup parent if it made it.
	if [ -n "$ids" ]; then
		find /sys/fs/cgroup -maxdepth 4 -type d -regextype egrep -regex ".*/($(echo $ids | tr ' ' '|'))" |
			while read -r p; do retry_rmdir "$p"; done
	fi
	for p in /sys/fs/cgroup/*/k8s.io; do
		grep -qxF "$p" <<<"$cgroups_before" || rmdir "$p" 2>/dev/null
	done
	ip link del "$bridge" 2>/dev/null
	purge_portmap "${cni_network:-critest}"
	host_state_leave
	if [ "${CRITEST_KEEP:-}" = 1 ]; then
		echo "run.sh: kept $work" >&2
	else
		cp "$work/runtime.log" "$report/runtime.log" 2>/dev/null
		rm -rf "$work"
	fi
	exit "$status"
}

# purge_portmap NAME removes the rules portmap made for the pods of network
# NAME (their comment names it) and its per-pod chains: what a runtime that
# did not tear a pod down left.
purge_portmap() {
	local save script chains
	save=$(iptables-save -t nat 2>/dev/null) || return 0
	script=$(grep -F -- "name: \"$1\"" <<<"$save" | grep '^-A ' | grep -vE '^-A CNI-[A-Z]+-[0-9a-f]+ ' | sed 's/^-A/-D/')
	chains=$(grep -F -- "name: \"$1\"" <<<"$save" | grep -oE -- '-j CNI-[A-Z]+-[0-9a-f]+$' | cut -c4- | sort -u)
	[ -z "$script$chains" ] && return 0
	{
		echo "$script"
		for c in $chains; do printf -- '-F %s\n-X %s\n' "$c" "$c"; done
	} | nat_apply
}

# nat_apply applies the iptables rule changes on stdin to the nat table.
nat_apply() {
	{ echo '*nat'; grep -v '^$'; echo COMMIT; } | iptables-restore --noflush --wait
}

# The CNI plugins change the host: the bridge plugin turns ip_forward on,
# portmap adds chains shared by all networks. Tests of pkg/cni (cnitest) put
# the host back when the last of them on the machine ends, under a lock
# file; run.sh takes part in the same protocol: the first user records the
# host state, the last restores it.
host_state_dir=${TMPDIR:-/tmp}/cri-rt-cnitest
portmap_chains="CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ"

host_state_enter() {
	local had=false
	mkdir -p "$host_state_dir" && chmod 700 "$host_state_dir"
	exec {host_state_fd}>>"$host_state_dir/shared.lock"
	if flock -xn "$host_state_fd"; then
		iptables-save -t nat | grep -q '^:CNI-HOSTPORT-DNAT ' && had=true
		printf '{"ipForward":"%s","hadPortmapChains":%s}' "$(cat /proc/sys/net/ipv4/ip_forward)" "$had" \
			>"$host_state_dir/host-state.json"
	fi
	flock -s "$host_state_fd"
}

host_state_leave() {
	local state save c
	[ -n "${host_state_fd:-}" ] || return 0
	flock -xn "$host_state_fd" || { exec {host_state_fd}>&-; return 0; } # others still at it
	state=$(cat "$host_state_dir/host-state.json" 2>/dev/null)
	[ -n "$state" ] || { exec {host_state_fd}>&-; return 0; }
	sed -n 's/.*"ipForward":"\([01]\)".*/\1/p' <<<"$state" >/proc/sys/net/ipv4/ip_forward
	save=$(iptables-save -t nat)
	if grep -q '"hadPortmapChains":false' <<<"$state" && grep -q '^:CNI-HOSTPORT-DNAT ' <<<"$save" &&
		! grep -q '^-A CNI-HOSTPORT-DNAT ' <<<"$save"; then
		for c in $portmap_chains; do # the jumps to them, then the chains
			grep -E -- "^-A [A-Z]+ .*-j $c\$" <<<"$save" | sed 's/^-A/-D/'
		done | nat_apply
		for c in $portmap_chains; do
			grep -q "^:$c " <<<"$save" && printf -- '-F %s\n-X %s\n' "$c" "$c"
		done | nat_apply
	fi
	rm -f "$host_state_dir/host-state.json"
	exec {host_state_fd}>&-
}

# retry_rmdir DIR removes the empty cgroup DIR, waiting up to 5 seconds for
# its last processes to go.
retry_rmdir() {
	for _ in $(seq 50); do
		rmdir "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run.sh: cgroup $1 left: $(cat "$1/cgroup.procs" 2>/dev/null | tr '\n' ' ')" >&2
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 seconds.
stop_pid() {
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
}
