package snapshot

// WithParent asks Commit to "rebase": the active snapshot is committed
// under parent instead of the parent it was prepared with. Only
// snapshotters whose layers do not depend on their parents support it
// (see Rebaser); the others fail the Commit with NotImplemented.
//
// It lets an unpacker apply the layers of an image in parallel:
//
//	for each layer i at once: Prepare(key_i, ""); apply layer i
//	then in chain order:      Commit(chainID_i, key_i, WithParent(chainID_{i-1}))
//
// The layer applied into an empty snapshot has no lower files to delete,
// so the applier must record deletions as the backend's whiteouts.
//
// WithParent has no meaning for Prepare and View, which take the parent
// as an argument; they reject it with InvalidArgument.
func WithParent(parent string) Opt {
	return func(info *Info) error {
		info.Parent = parent
		return nil
	}
}

// Rebaser is implemented by snapshotters that may support WithParent on
// Commit. A wrapper (such as the namespaced view of pkg/meta) implements
// it by asking the backend it wraps.
type Rebaser interface {
	// CanRebase reports whether Commit honours WithParent.
	CanRebase() bool
}

// CanRebase reports whether sn honours WithParent on Commit.
func CanRebase(sn Snapshotter) bool {
	r, ok := sn.(Rebaser)
	return ok && r.CanRebase()
}
