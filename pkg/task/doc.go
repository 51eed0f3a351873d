// Package task is the daemon side of tasks: a Manager that starts one shim
// per sandbox group (or finds it again), Task and Process handles on the
// containers and exec processes the shims hold, the path that delivers
// their exits to the daemon without ever dropping one, Restore after a
// daemon restart, the cleanup after a shim that died, and cgroup
// statistics read from cgroupfs.
//
// It imports the leaves (errdefs, namespaces, identifiers, mount, events
// and its api/events payloads), go-runc, runtime-spec and its own
// sub-packages; not meta, image, cri, server, prometheus, bbolt or libcni.
// The sub-packages are:
//
//	shimapi   the protocol, shared by both ends: messages, socket paths, wire
//	shim      the shim process (cmd/cri-runtime-shim): runtime, reaper, IO
//	cgroups   reading cgroupfs: a process's cgroup, OOM kill count, stats
//	tasktest  what the tests share: shim binary, busybox rootfs, specs
//
// The shim links only the standard library, the leaves, shimapi, cgroups,
// go-runc and runtime-spec; hack/depcheck checks its whole closure (no
// gRPC, protobuf runtime, bbolt, prometheus, klog, oras, libcni).
//
// # Processes
//
//	daemon (pkg/task.Manager)                   shim of <ns>/<group>
//	  Create ──start the shim on first use──►   cri-runtime-shim -state S -namespace N -group G
//	         (setsid; "ok" on fd 3 once it        │  child subreaper, own session
//	          listens; its stderr: shim.log)      ├── runc/crun create|start|exec|kill|delete ...
//	  calls ─────── unix socket ─────────────►    ├── container init processes (inherited)
//	  follow ◄──── Events(after seq) ─────────    └── exec processes
//
// One shim holds every container and exec process of a group (a pod
// sandbox). It outlives the daemon: a SIGKILLed daemon leaves it running,
// and its containers' output keeps reaching their log files. It exits
// when the daemon deletes its last container (Shutdown, refused while it
// holds one, so a create racing it cannot be lost). Concurrent first uses
// of a group start one shim: creates share a per-group lock that the
// shutdown takes exclusively.
//
// # Protocol
//
// Length-prefixed JSON frames over the unix socket: a 4-byte big-endian
// length, then {"id","method","body"} for a request, {"id","cancel":true}
// when the caller's ctx ends (the shim cancels the request), and
// {"id","body"} or {"id","error":{"class","message"}} for the answer. The
// error class is the errdefs class by name, so errors.Is works across the
// socket. Calls are multiplexed on one connection and may run for long
// (Wait, Events). The methods are those of shimapi.Client: Info, Create,
// Start, Exec, Kill, Pause, Resume, Pids, Update, CloseStdin, Resize,
// Wait, Delete, Checkpoint, State, Events, ReopenLog, Shutdown.
//
// Why not gRPC or ttrpc: measured here (go1.26, CGO_ENABLED=0) with an
// echo server over a unix socket for each, 256-byte payloads:
//
//	                 binary (-s -w)   idle RSS   1 server, 2000 calls    10 servers, PSS each
//	                                             RSS       PSS          GOGC=100   GOGC=25
//	gRPC                10.4 MB        9.1 MiB   15.6 MiB  11.3 MiB     6.9 MiB    4.2 MiB
//	ttrpc                4.3 MB        4.6 MiB    9.0 MiB   7.1 MiB     5.3 MiB    3.4 MiB
//	JSON frames          2.6 MB        3.0 MiB    7.7 MiB   6.5 MiB     5.3 MiB    2.8 MiB
//	net/rpc + jsonrpc    5.7 MB        5.9 MiB    8.6 MiB   6.2 MiB     4.0 MiB    3.3 MiB
//
// The JSON frames win at rest and in size, need no generated code, and keep
// gRPC out of the shim entirely (ttrpc imports grpc/codes and grpc/status,
// and the protobuf runtime). Under load the heap, not the protocol,
// dominates; in the shim itself a lower GOGC did not pay (the live heap is
// far under the minimum goal) and GOMAXPROCS 1 saves 0.3 MiB. The whole
// shim (go-runc included) is a 3.6 MB stripped binary: 4.6 MiB PSS holding
// one container, 5.2 MiB holding ten (0.5 MiB per container), where
// containerd 2.4.2's shims take 16.4 MiB and 5.4 MiB per container
// (hack/bench/shim/run.sh). Run-to-exit of /bin/true (create, start, wait,
// delete) costs 11 ms over a bare `runc run` in a pod whose shim runs on a
// quiet day (22 ms with an overlay rootfs, 31 ms when the shim starts too;
// `ctr run --rm`: 144 ms), 51 ms on a busy one, when the runtime's four
// commands alone cost 40 ms over its one; Restore of 100 running
// containers in 100 shims, 50-110 ms.
//
// # Events and exits
//
// The shim numbers its events (create, start, exit, oom, paused, resumed,
// exec-added, exec-started, delete) and keeps the last 1024. The Manager
// follows each shim with Events(after) and calls Config.OnEvent for each,
// in order, one at a time per shim; a slow OnEvent only holds back that
// shim's events. If the daemon falls more than 1024 behind, the shim says
// Lost and the Manager resynchronises from State: the shim keeps the last
// status (exit code, time, reason) of every process until it is deleted,
// so no exit is ever lost, only replayed (Event.Replayed). The same
// replay happens after Restore. OnEvent must be idempotent. The
// Publisher, when set, also gets every event on the exchange (lossy).
//
// An exit is final (its event out, Wait answered) once the process's
// output has reached its sinks (bounded by 2 s) and, for a container's
// init, once its exec processes have exited: exec exits come first, and
// the delete event always follows the exit event. An exit's reason is
// OOMKilled when the container's memory cgroup OOM-killed a process since
// the container was created (oom_kill of memory.oom_control or
// memory.events); a shim that died gives its containers status 255 and
// ReasonShimGone.
//
// # Process states
//
// One type per state (shim/init_state.go, shim/exec.go); an operation a
// state does not allow is a *shim.TransitionError, FailedPrecondition, or
// NotFound once deleted:
//
//	init:  created ──start──► running ◄──resume/pause──► paused
//	          │                  │                         │
//	          └──────exit────────┴──────────exit───────────┴──► stopped ──delete──► deleted
//	       created ──delete (kills)──► deleted
//	       createdCheckpoint ──start (CRIU restore)──► running
//	exec:  created ──start──► running ──exit──► stopped ──delete──► deleted
//
// The runtime's error output is read in one place (shim/runtime_errors.go)
// and mapped to classes: "container not running" is FailedPrecondition,
// "does not exist" NotFound, a missing executable InvalidArgument.
//
// # IO
//
// Container output goes to the CRI log file (`<RFC3339Nano> stdout|stderr
// P|F <line>`, lines split with P at IO.LogLineSize, 16 KiB by default),
// written by one goroutine per log. A slow disk or a missing reader never
// blocks the container: each sink holds up to IO.OutputBuffer bytes (256
// KiB by default) and then drops output, writing a marker line with the
// bytes and lines dropped where they went missing. Dropping, not
// spilling to disk: the disk is what is slow. ReopenLog reopens the file
// after rotation. stdin, stdout and stderr for the daemon (exec, attach)
// go through FIFOs under <state>/fifo that the daemon opens first; its
// reader and writers are the caller's (LimitedBuffer caps what ExecSync
// keeps). A terminal is a pty whose master the runtime sends on a console
// socket; Resize sets its size. Only this daemon sees FIFO output: after
// a restart, the log file is what remains.
//
// # Files on disk
//
//	<state>/                               Config.StateDir (daemon: <state dir>/tasks)
//	├── s/<24 hex>                         shim sockets: FNV-128a(namespace/group), so
//	│                                      that the path stays under 108 bytes
//	├── fifo/<ns>-<id>-<exec>-<rand>/      the daemon's FIFOs: stdin, stdout, stderr
//	└── <namespace>/<group>/               one shim's directory
//	    ├── shim.pid                       the shim's pid
//	    ├── shim.log                       the shim's stderr
//	    └── <container id>/                bundle
//	        ├── config.json                the runtime-spec as given
//	        ├── runtime                    the runtime binary (for cleanup after a dead shim)
//	        ├── rootfs/                    mount point of the rootfs mounts
//	        ├── root/                      the runtime's --root (its state)
//	        ├── runtime.log                the runtime's own log (JSON)
//	        ├── init.pid, exec-<id>.pid    pid files
//	        └── exec-<id>.log              the runtime's log of one exec
//
// Nothing here is a second copy of state: the bundle is the runtime's
// input, and the daemon finds a shim from (namespace, group) alone.
//
// # Caveats
//
//   - Restore must run once at daemon start, before anything else. A live
//     shim is reconnected, an empty one told to exit, a dead one cleaned
//     up: runtime delete --force (kills the processes, removes the cgroup),
//     unmount of the rootfs, removal of the bundle and the group directory.
//   - A container process that outlives a killed shim is reparented to the
//     host's init; on a host whose init does not reap orphans (this test
//     VM's), it stays a zombie after the cleanup killed it.
//   - crun 1.8 refuses a cgroup v1/v2 hybrid host whose cgroup2 hierarchy
//     has controllers; tasktest.Runtimes skips it there and says why.
//   - Stats need a running or paused task (they are read from the cgroup
//     of its init pid).
package task
