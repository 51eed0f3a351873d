// Package sandbox owns the life of pod sandboxes: the steps of a pod's
// start and their undo, its stop and removal, and the in-flight table
// (Creates) that makes creates idempotent under kubelet's retries.
//
// # The steps of Run, and their undo
//
//	step       does                                        undo
//	lease      a lease in ctx, 1 h                          deleted at the end, whatever happened
//	snapshot   Prepare the pause's rootfs on the image's   Remove the snapshot
//	           ChainID (writable: the runtime makes the
//	           mount points; the spec makes it read-only)
//	files      hostname, hosts, resolv.conf; shm tmpfs     unmount shm, remove the files
//	netns      a network namespace pinned on a file         unmount and remove it
//	cni        CNI ADD: IPs, routes                         CNI DEL
//	namespaces (no pause) IPC and UTS namespaces pinned   unmount and remove them
//	           on files, hostname and sysctls set
//	record     the sandbox record, in one transaction,     delete the record
//	           referencing the rootfs by a GC label
//	shim       runc create of the pause, in a new shim      kill and delete the task (the shim exits)
//	start      runc start; the status Running, written
//	           at once for the caller's next call
//
// A pod without a pause (Spec.NoPause) skips the snapshot, shim and
// start steps: it is Running, pid 0, from its record on, its containers
// join its pinned namespaces, and Stop writes it exited and unpins them.
//
// Each undo runs, in reverse, under its own fresh context bounded by a
// minute: a failed start leaves nothing. Stop kills and deletes the pause,
// detaches the network (CNI DEL, from libcni's cache, so a missing conf
// does not keep the pod attached) and unmounts shm, and records that the
// network is torn down: a second Stop does nothing. Remove deletes the
// record (refused while containers belong to it), the files and the
// rootfs.
//
// # Creates
//
// A create (RunPodSandbox, CreateContainer) runs past kubelet's deadline to
// its end; a retry with the same key waits for it or, once it succeeded
// with nobody waiting, gets its parked result. A failed create is not
// parked: the retry runs it again.
//
// It imports meta, task, cni and the leaves; never cri or server. It keeps
// no state of its own: the record, the shim and the files are the truth.
package sandbox
