// Package cni attaches pods to networks with CNI plugins: it creates and
// removes the pods' network namespaces, reads the CNI configuration
// directory (and sees it change without a restart), and runs the plugins'
// ADD, DEL, CHECK and STATUS through libcni.
//
// It imports only the leaves of this project (errdefs), libcni and klog:
// nothing of meta, task or sandbox. It keeps no state of its own on disk;
// libcni keeps its cache (cache_dir), which the CNI spec requires for DEL.
// Setup returns the pod's Result for the caller to store.
//
// # Vocabulary
//
//   - conf dir: the directory of network configurations; the first
//     max_conf_num files in lexical order are the pod's networks, as in
//     containerd and CRI-O. A .conf or .json file holds one plugin, a
//     .conflist a chain of them.
//   - network: one configuration file (a conf list), attached to a pod as
//     one interface, eth0 for the first.
//   - attachment: a network as attached to one pod; libcni's cache holds
//     its configuration and result under (network, pod ID, interface).
//   - netns: a network namespace pinned on a file of netns_dir.
//
// # Lifecycle of a pod's network (driven by pkg/sandbox)
//
//	path, err := cni.NewNetNS(cfg.NetNSDir, podID)   // pin a new netns
//	res, err := network.Setup(ctx, podID, path, opts) // ADD: IPs, routes
//	... the pause container joins path ...
//	err = network.Teardown(ctx, podID, path, opts)    // DEL, idempotent
//	err = cni.RemoveNetNS(path)                       // unpin, idempotent
//
// At start the daemon lists netns_dir (ListNetNS) and removes what no
// sandbox owns; Teardown needs no record of the Setup, so a pod whose
// sandbox record is lost can still be detached by its ID.
//
// # Decisions
//
// The conf dir is not watched with inotify; each call re-reads its
// fingerprint (load.go says why). Errors have the classes listed in
// errors.go. Plugins run under plugin_timeout each, killed with their
// process group when it or the caller's ctx ends (exec.go). Namespaces are
// created on a locked thread that is never unlocked, so it dies with its
// goroutine and no other goroutine ever runs in a pod's namespace
// (netns.go).
package cni
