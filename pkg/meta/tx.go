package meta

import (
	"context"
)

// Tx is one write transaction over the container and sandbox records of
// a namespace, for writes that must land together or not at all: a
// sandbox and its pause container, say. It is valid only inside the
// function given to DB.Update, and is passed explicitly, never in a
// context. Its methods do no I/O beyond bolt.
type Tx struct {
	t   *tx
	db  *DB
	ns  string
	ctx context.Context
}

// Update runs fn in one write transaction in the namespace of ctx: every
// write fn makes commits, or none does when fn returns an error. Events
// are published once it has committed.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	return db.update(ctx, func(t *tx) error {
		// Until a write other than a status, this is no mutation for
		// the collector's policy: see SetContainerStatus.
		t.statusOnly = true
		return fn(&Tx{t: t, db: db, ns: ns, ctx: ctx})
	})
}

// Namespace is the namespace of the transaction's records.
func (tx *Tx) Namespace() string { return tx.ns }

// mutates marks the transaction as a mutation for the collector's policy.
func (tx *Tx) mutates() { tx.t.statusOnly = false }
