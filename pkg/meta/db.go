package meta

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
)

// DB is the metadata database: one bbolt file, the namespaced views over
// the content store and the snapshotters, and the garbage collector.
type DB struct {
	bdb          *bolt.DB
	content      content.Store           // backend, shared by every namespace
	cs           *contentStore           // namespaced view of content
	snapshotters map[string]*snapshotter // namespaced views; fixed after Open
	publisher    events.Publisher        // nil: no events
	scheduler    *gc.Scheduler

	// wlock is the interlock between writers and the collector: every
	// write transaction, and every backend operation that creates what a
	// record will reference, runs under RLock; the collector's mark and
	// metadata sweep run under Lock.
	wlock sync.RWMutex
	// cl guards backend blobs and ingests: content writers hold RLock from
	// the backend operation to the record that references its result; the
	// collector holds Lock while it checks and removes backend content.
	cl sync.RWMutex
	// gcMu serialises collections and Check.
	gcMu sync.Mutex
	// reconciled is guarded by gcMu: the first collection after Open also
	// removes backend blobs, ingests and snapshots that no record names
	// (left over by a crash).
	reconciled bool
	// gcHint, guarded by gcMu, sizes the next collection's graph.
	gcHint graphHint

	// mu guards the fields below.
	mu sync.Mutex
	// callbacks are called after every committed write transaction.
	callbacks []func(dirty bool)
	// pendingContent holds digests whose last record may have been
	// deleted since the last collection: the collector removes those no
	// namespace references from the backend.
	pendingContent map[digest.Digest]struct{}
	// openIngests counts the open writers per backend ingest ref; the
	// collector never aborts those.
	openIngests map[string]int
	// pins counts, per node, the backend operations in progress that
	// need it: the parent a snapshot is copied from, the active snapshot
	// being committed. The mark takes pinned nodes as roots, so that
	// writers need not hold the interlock across slow disk work (see pin).
	pins map[gc.Node]int

	cancel context.CancelFunc
	done   chan struct{}
}

var _ gc.Collector = (*DB)(nil)

// Opt configures Open.
type Opt func(*options)

type options struct {
	publisher events.Publisher
	policy    *gc.Policy
	reg       prometheus.Registerer
}

// WithPublisher publishes the events of api/events/v1 on p: /namespaces/*,
// /images/*, /content/*, /containers/* and /snapshot/*.
func WithPublisher(p events.Publisher) Opt {
	return func(o *options) { o.publisher = p }
}

// WithGCPolicy sets when the collector runs; default gc.DefaultPolicy().
func WithGCPolicy(p gc.Policy) Opt {
	return func(o *options) { o.policy = &p }
}

// WithRegisterer registers the collector's metrics on reg; by default they
// are not registered.
func WithRegisterer(reg prometheus.Registerer) Opt {
	return func(o *options) { o.reg = reg }
}

// Open opens (creating it if needed) the bolt file at path, migrates its
// schema to the current version and starts the collector's scheduler,
// which Close stops. cs and snapshotters are the backends; the DB does not
// close them.
func Open(ctx context.Context, path string, cs content.Store, snapshotters map[string]snapshot.Snapshotter, opts ...Opt) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.policy == nil {
		p := gc.DefaultPolicy()
		o.policy = &p
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("metadata database %q: %w", path, err)
	}
	if err := bdb.Update(migrate); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("metadata database %q: %w", path, err)
	}
	db := &DB{
		bdb:            bdb,
		content:        cs,
		snapshotters:   make(map[string]*snapshotter, len(snapshotters)),
		publisher:      o.publisher,
		pendingContent: map[digest.Digest]struct{}{},
		openIngests:    map[string]int{},
		pins:           map[gc.Node]int{},
		done:           make(chan struct{}),
	}
	db.cs = &contentStore{db: db}
	for name, sn := range snapshotters {
		db.snapshotters[name] = newSnapshotter(db, name, sn)
	}
	db.scheduler = gc.NewScheduler(db, *o.policy, gc.NewMetrics(o.reg))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	db.cancel = cancel
	go func() {
		defer close(db.done)
		db.scheduler.Run(runCtx)
	}()
	return db, nil
}

// Close stops the collector and closes the bolt file. The backends stay
// open.
func (db *DB) Close() error {
	db.cancel()
	<-db.done
	return db.bdb.Close()
}

// ContentStore returns the namespaced view of the content store.
func (db *DB) ContentStore() content.Store { return db.cs }

// Snapshotter returns the namespaced view of the snapshotter name, nil if
// there is none.
func (db *DB) Snapshotter(name string) snapshot.Snapshotter {
	sn, ok := db.snapshotters[name]
	if !ok {
		return nil
	}
	return sn
}

// Snapshotters returns the names of the snapshotters, sorted.
func (db *DB) Snapshotters() []string {
	names := make([]string, 0, len(db.snapshotters))
	for name := range db.snapshotters {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// GCScheduler returns the scheduler that runs the collector.
func (db *DB) GCScheduler() *gc.Scheduler { return db.scheduler }

// RegisterMutationCallback registers fn, called after every committed
// write transaction with dirty true when it deleted something.
func (db *DB) RegisterMutationCallback(fn func(dirty bool)) {
	db.mu.Lock()
	db.callbacks = append(db.callbacks, fn)
	db.mu.Unlock()
}

// tx is a bolt transaction with what is to happen once it commits.
type tx struct {
	*bolt.Tx
	// dirty is set by whatever deletes a record or a reference.
	dirty bool
	// statusOnly is set while the transaction wrote only last-known
	// statuses: no mutation for the collector's policy, which the
	// callbacks are not told of.
	statusOnly bool
	// events are published after the commit.
	events []event
	// deletedContent are digests whose record was deleted.
	deletedContent []digest.Digest
}

type event struct {
	ns    string
	topic string
	msg   proto.Message
}

func (t *tx) publish(ns, topic string, msg proto.Message) {
	t.events = append(t.events, event{ns: ns, topic: topic, msg: msg})
}

// view runs fn in a read transaction.
func (db *DB) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bdb.View(fn)
}

// update runs fn in a write transaction under the writers' side of the
// interlock, then runs the callbacks and publishes the events.
func (db *DB) update(ctx context.Context, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db.wlock.RLock()
	t, err := db.commit(fn)
	db.wlock.RUnlock()
	if err != nil {
		return err
	}
	db.committed(ctx, t)
	return nil
}

// commit runs fn in a write transaction; the caller holds wlock.RLock and
// calls committed once it has released it.
func (db *DB) commit(fn func(*tx) error) (*tx, error) {
	var t *tx
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		t = &tx{Tx: btx}
		return fn(t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// committed runs what follows a committed write transaction: the content
// to reconsider, the mutation callbacks and the events.
func (db *DB) committed(ctx context.Context, t *tx) {
	db.mu.Lock()
	for _, d := range t.deletedContent {
		db.pendingContent[d] = struct{}{}
	}
	callbacks := db.callbacks
	db.mu.Unlock()
	if !t.statusOnly {
		for _, fn := range callbacks {
			fn(t.dirty)
		}
	}
	if db.publisher == nil {
		return
	}
	for _, e := range t.events {
		ectx := namespaces.WithNamespace(ctx, e.ns)
		if err := db.publisher.Publish(ectx, e.topic, e.msg); err != nil {
			klog.FromContext(ctx).Error(err, "publish event", "topic", e.topic, "namespace", e.ns)
		}
	}
}

// pin makes nodes roots of every mark until the returned unpin is called.
// The caller holds wlock.RLock and commits a write transaction before it
// releases it: a mark that started before that commit is then validated
// again inside the sweep (its transaction ID no longer follows the
// mark's), and reads the pins again there. So a backend operation pins
// what it needs in the transaction that checks it, runs without the
// interlock, and unpins after the transaction that records its result.
func (db *DB) pin(nodes ...gc.Node) (unpin func()) {
	db.mu.Lock()
	for _, n := range nodes {
		db.pins[n]++
	}
	db.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			db.mu.Lock()
			for _, n := range nodes {
				if db.pins[n]--; db.pins[n] <= 0 {
					delete(db.pins, n)
				}
			}
			db.mu.Unlock()
		})
	}
}

// pinned returns the pinned nodes by namespace.
func (db *DB) pinned() map[string][]gc.Node {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := map[string][]gc.Node{}
	for n := range db.pins {
		out[n.Namespace] = append(out[n.Namespace], n)
	}
	return out
}

// namespace returns the namespace of ctx; every store call requires one.
func namespace(ctx context.Context) (string, error) {
	return namespaces.NamespaceRequired(ctx)
}

// errIfCanceled returns ctx's error, wrapped with what was being done.
func errIfCanceled(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// internalf reports a corrupt record.
func internalf(format string, args ...any) error {
	return errdefs.Errorf(errdefs.ErrInternal, format, args...)
}
