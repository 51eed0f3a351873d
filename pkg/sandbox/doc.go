// Package sandbox owns the life of pod sandboxes: the steps of a pod's
// start and their undo, the pause container's spec, the sandbox state, and
// the in-flight table (Creates) that makes creates idempotent under
// kubelet's retries.
//
// It imports meta, task, cni, image and the leaves; never cri or server.
package sandbox
