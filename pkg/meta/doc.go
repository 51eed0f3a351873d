// Package meta is the metadata database of cri-runtime: one bbolt file
// that holds the namespaces, images, containers, sandboxes and leases, the
// namespaced views over the content store and the snapshotters, and the
// garbage collector that removes what nothing references any more.
//
// It imports content, snapshot, events, filters, namespaces, leases,
// identifiers, errdefs, its own gc sub-package and the api/events payloads;
// nothing above it (image, cri, server).
//
// # Schema
//
// Every key is a bucket unless it shows a value after ':'. Times are
// time.Time.MarshalBinary, integers binary.PutVarint. "labels" buckets map
// label keys to values.
//
//	v1                                  schema root; its sequence numbers
//	│                                   backend snapshot keys and ingest refs
//	├── version : 2                     the schema version (migrations.go)
//	└── <namespace>                     created explicitly or by its first write
//	    ├── labels
//	    ├── images
//	    │   └── <name>
//	    │       ├── createdat, updatedat : time
//	    │       ├── labels
//	    │       ├── config : string, the config digest (the CRI's image ID)
//	    │       └── target
//	    │           ├── digest, mediatype : string
//	    │           ├── size : varint
//	    │           └── annotations
//	    ├── imageconfigs                the images by config digest, written
//	    │   └── <config digest>         with the image records
//	    │       └── <name> : ""
//	    ├── containers
//	    │   └── <id>
//	    │       ├── createdat, updatedat : time
//	    │       ├── labels
//	    │       ├── image, snapshotter, snapshotkey, sandboxid : string
//	    │       ├── spec : bytes (runtime-spec JSON)
//	    │       ├── status : JSON, the last known status of its task (status.go)
//	    │       ├── runtime
//	    │       │   ├── name : string
//	    │       │   └── options : bytes
//	    │       └── extensions : <name> → bytes
//	    ├── sandboxes
//	    │   └── <id>                    as containers, without image and snapshot,
//	    │       └── containers : <id> → ""  and with the index of its containers
//	    ├── content
//	    │   ├── blob
//	    │   │   └── <digest> : record  size, times, labels in one value (blobs.go):
//	    │   │                          the collector reads them all in its pause
//	    │   └── ingests
//	    │       └── <ref>
//	    │           ├── ref : "<namespace>/<seq>/<ref>", the backend's ref
//	    │           └── expireat : time, only for an ingest opened without a lease
//	    ├── snapshots
//	    │   └── <snapshotter>
//	    │       └── <key or name>
//	    │           ├── name : "<namespace>/<seq>/<key>", the backend's key
//	    │           ├── kind : "Active" | "View" | "Committed"
//	    │           ├── parent : string, the parent's name in the namespace
//	    │           ├── createdat, updatedat : time
//	    │           ├── labels
//	    │           └── children : <key> → ""
//	    └── leases
//	        └── <id>
//	            ├── createdat : time
//	            ├── labels              the expiry is the label cri-runtime.io/gc.expire
//	            ├── content : <digest> → ""
//	            ├── ingests : <ref> → ""
//	            └── snapshots
//	                └── <snapshotter> : <key> → ""
//
// # Content and snapshots
//
// The content backend holds each blob once for all namespaces; a namespace
// sees a blob when it has a record of it. A Writer whose expected digest
// the backend already has links the blob into the namespace without an
// upload and returns AlreadyExists. Deleting a blob deletes the record
// only; the collector removes the bytes when no namespace has a record.
// Ingest refs and snapshot keys are namespaced by mapping them to backend
// names "<namespace>/<seq>/<name>", unique for the life of the file.
//
// # Garbage collection
//
// Roots are images (their target), containers (their snapshot), sandboxes,
// the resources of unexpired leases, unexpired ingests opened without a
// lease, and blobs or snapshots labelled LabelGCRoot. Edges are the
// LabelGCRefContent and LabelGCRefSnapshot labels of images, containers,
// sandboxes, blobs and snapshots, and a snapshot's parent. GarbageCollect
// reads the whole graph in one pass into numbered nodes (gc_scan.go),
// marks over the numbers, deletes the
// unreachable records and the expired leases, then removes from the
// backends what the records no longer name.
//
// # Pods
//
// A container may name a sandbox, which must exist; the sandbox lists its
// containers in the same transaction, and cannot be deleted while it has
// any (FailedPrecondition). DB.Update hands out a Tx for the writes that
// must land together: a sandbox and its pause container. The last known
// status of a container's or sandbox's task (state, pid, exit code, times,
// reason) is written by SetStatus only; it is no mutation for the
// collector's policy, and it is the single source of truth for exits.
//
// # Caveats
//
//   - Writers and the collector share an interlock (DB.wlock): every write
//     transaction holds the read side; the metadata sweep holds the write
//     side. That is the pause in gc.Stats.MetaD, timed from when the sweep
//     has the lock. No disk I/O but bolt's own runs under it: a backend
//     operation (a native copy, a usage walk, a blob's fsync) pins what it
//     needs (DB.pin: roots for every mark) in the transaction that checks
//     it, runs without the interlock, and unpins after the transaction
//     that records its result. Backend removals run after the pause, each
//     checked again under a lock of their own (content: DB.cl; snapshots:
//     the view's sl, which also keeps the reconcile of the first
//     collection off snapshots not recorded yet).
//   - Whatever is created without a lease and without a referrer is
//     garbage at the next collection: pulls and unpacks run under a lease
//     (WithLease).
//   - No I/O runs inside a bolt transaction: a snapshot is created by a
//     transaction that reserves its backend key, the backend call, and a
//     transaction that records it. A crash in between leaves a backend
//     object without a record, which the first collection after Open
//     removes.
//   - Deleting a blob or a snapshot also drops it from every lease of the
//     namespace, so that leases never hold what does not exist.
//   - The sweep's transaction commits with bolt's fsync, inside the
//     pause: bolt needs its data pages on disk before its meta page.
//   - Check holds writers off for its whole run, backend stat calls
//     included: it is for tests and repair, not for a busy daemon.
//   - A RecordView (SandboxStore.View, ContainerStore.View) hands out
//     bolt's own memory, valid only inside the callback: copy what you
//     keep. The generation a View returns is bolt's last committed
//     transaction ID: any write, of any namespace, moves it on.
//   - Bolt allows one process per file: Open waits up to 10 s for the file
//     lock, then fails.
package meta
