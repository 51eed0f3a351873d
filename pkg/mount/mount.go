// Package mount performs and undoes mounts in the form of mount(2): the
// mounts a snapshotter returns for a root filesystem, bind mounts, and
// temporary mounts that are always cleaned up. Both the daemon and the shim
// use it, so it imports only the leaves of the project.
package mount

// Mount is one mount to perform, in the form of mount(2).
type Mount struct {
	Type    string
	Source  string
	Target  string // relative to the mount root; "" for the root
	Options []string
}
