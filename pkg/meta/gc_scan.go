package meta

import (
	"bytes"
	"hash/maphash"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	bolt "go.etcd.io/bbolt"
)

// graph is the reference graph of the whole database, read in one
// transaction. Nodes are numbered, and a node's key aliases the
// transaction's memory: scanning ten thousand blobs allocates nothing per
// blob. Blobs are found by a 64-bit hash of their digest, without
// comparing the digest itself (a cache miss per reference): two blobs
// whose hashes collide are both made roots, and a missing digest that
// collides marks a blob that exists. Either way a collision keeps
// garbage, never collects what is referenced.
type graph struct {
	now time.Time
	// nodes are the blobs, ingests and snapshots: swept unless reachable.
	nodes []node
	// adj holds the edges out of a node, by node number.
	adj map[int32][]int32
	// roots are node numbers.
	roots []int32
	// expired are the leases past their expiry: swept.
	expired []gc.Node
	// nextExpiry is the earliest expiry still to come, of a lease or of
	// an ingest opened without one; zero if none.
	nextExpiry time.Time

	// The nodes of the namespace being scanned: blobs by the hash of
	// their digest, ingests and snapshots by key, snapshots as
	// "<snapshotter>/<key>".
	blobs              map[uint64]int32
	seed               maphash.Seed
	ingests, snapshots map[string]int32
	// maxBlobs is the most blobs of one namespace.
	maxBlobs int
}

// node is a graph node; key is valid only in the scan's transaction.
type node struct {
	typ gc.ResourceType
	ns  string
	key []byte
}

// graphHint sizes the next graph like the last one.
type graphHint struct{ nodes, blobs int }

// blob returns the number of the blob dgst in the namespace being scanned.
func (g *graph) blob(dgst []byte) (int32, bool) {
	id, ok := g.blobs[maphash.Bytes(g.seed, dgst)]
	return id, ok
}

var (
	labelGCPrefixB  = []byte(labelGCPrefix)
	labelGCRootB    = []byte(LabelGCRoot)
	labelExpireB    = []byte(LabelGCExpire)
	labelRefContent = []byte(LabelGCRefContent)
	labelRefSnap    = []byte(LabelGCRefSnapshot + ".")
)

// scanGraph reads every namespace: first its nodes, then the edges
// between them, then its roots. References never cross namespaces.
func scanGraph(btx *bolt.Tx, now time.Time, hint graphHint, pins map[string][]gc.Node) *graph {
	g := &graph{now: now, adj: map[int32][]int32{}, nodes: make([]node, 0, hint.nodes+hint.nodes/8), seed: maphash.MakeSeed()}
	v1 := btx.Bucket(bucketKeyV1)
	if v1 == nil {
		return g
	}
	_ = v1.ForEachBucket(func(k []byte) error {
		ns := string(k)
		nbkt := v1.Bucket(k)
		g.blobs = make(map[uint64]int32, hint.blobs+hint.blobs/8)
		g.ingests, g.snapshots = map[string]int32{}, map[string]int32{}
		var bbkt, ibkt *bolt.Bucket
		if cbkt := nbkt.Bucket(bucketKeyContent); cbkt != nil {
			bbkt, ibkt = cbkt.Bucket(bucketKeyBlob), cbkt.Bucket(bucketKeyIngests)
		}
		sbkt := nbkt.Bucket(bucketKeySnapshots)
		g.addBlobs(ns, bbkt)
		g.maxBlobs = max(g.maxBlobs, len(g.blobs))
		g.addIngests(ns, ibkt)
		g.addSnapshots(ns, sbkt)
		g.blobEdges(bbkt)
		g.snapshotEdges(sbkt)
		g.leaseRoots(ns, nbkt.Bucket(bucketKeyLeases))
		g.imageRoots(nbkt.Bucket(bucketKeyImages))
		g.containerRoots(nbkt.Bucket(bucketKeyContainers))
		g.sandboxRoots(nbkt.Bucket(bucketKeySandboxes))
		g.pinRoots(pins[ns])
		return nil
	})
	return g
}

func (g *graph) add(n node, index map[string]int32, key string) int32 {
	id := int32(len(g.nodes))
	g.nodes = append(g.nodes, n)
	if index != nil {
		index[key] = id
	}
	return id
}

func (g *graph) addBlobs(ns string, bbkt *bolt.Bucket) {
	if bbkt == nil {
		return
	}
	c := bbkt.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		id := g.add(node{typ: gc.ResourceContent, ns: ns, key: k}, nil, "")
		h := maphash.Bytes(g.seed, k)
		if other, taken := g.blobs[h]; taken {
			g.roots = append(g.roots, other, id)
		} else {
			g.blobs[h] = id
		}
	}
}

// addIngests adds the ingests; one opened without a lease is a root until
// its expiry.
func (g *graph) addIngests(ns string, ibkt *bolt.Bucket) {
	if ibkt == nil {
		return
	}
	_ = ibkt.ForEachBucket(func(ref []byte) error {
		id := g.add(node{typ: gc.ResourceIngest, ns: ns, key: ref}, g.ingests, string(ref))
		if exp := readTime(ibkt.Bucket(ref), keyExpireAt); !exp.IsZero() && exp.After(g.now) {
			g.roots = append(g.roots, id)
			g.expiresAt(exp)
		}
		return nil
	})
}

func (g *graph) addSnapshots(ns string, sbkt *bolt.Bucket) {
	if sbkt == nil {
		return
	}
	_ = sbkt.ForEachBucket(func(name []byte) error {
		nbkt := sbkt.Bucket(name)
		return nbkt.ForEachBucket(func(key []byte) error {
			k := string(name) + "/" + string(key)
			g.add(node{typ: gc.ResourceSnapshot, ns: ns, key: []byte(k)}, g.snapshots, k)
			return nil
		})
	})
}

// target resolves the GC label k=v: the node it references, if it exists
// in the namespace, and whether it is LabelGCRoot.
func (g *graph) target(k, v []byte) (id int32, ok, root bool) {
	switch {
	case bytes.Equal(k, labelGCRootB):
		return 0, false, true
	case bytes.HasPrefix(k, labelRefContent):
		if rest := k[len(labelRefContent):]; len(rest) == 0 || rest[0] == '.' || rest[0] == '/' {
			id, ok = g.blob(v)
		}
	case bytes.HasPrefix(k, labelRefSnap):
		sn := k[len(labelRefSnap):]
		if i := bytes.IndexByte(sn, '/'); i >= 0 {
			sn = sn[:i]
		}
		id, ok = g.snapshots[string(sn)+"/"+string(v)]
	}
	return id, ok, false
}

// edge records a reference from the node from; a root-labelled node
// (from itself) or a reference from a root (from < 0) is a root.
func (g *graph) edge(from int32, k, v []byte) {
	to, ok, root := g.target(k, v)
	switch {
	case root && from >= 0:
		g.roots = append(g.roots, from)
	case ok && from < 0:
		g.roots = append(g.roots, to)
	case ok:
		g.adj[from] = append(g.adj[from], to)
	}
}

// labelEdges calls edge for the GC labels of the record bucket bkt. The
// labels are sorted, so only those with the GC prefix are read.
func (g *graph) labelEdges(from int32, bkt *bolt.Bucket) {
	lbkt := bkt.Bucket(bucketKeyLabels)
	if lbkt == nil {
		return
	}
	c := lbkt.Cursor()
	for k, v := c.Seek(labelGCPrefixB); k != nil && bytes.HasPrefix(k, labelGCPrefixB); k, v = c.Next() {
		g.edge(from, k, v)
	}
}

func (g *graph) blobEdges(bbkt *bolt.Bucket) {
	if bbkt == nil {
		return
	}
	c := bbkt.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) > 1 && v[1]&blobHasGCLabels != 0 {
			from, _ := g.blob(k)
			blobGCLabels(v, func(lk, lv []byte) { g.edge(from, lk, lv) })
		}
	}
}

func (g *graph) snapshotEdges(sbkt *bolt.Bucket) {
	if sbkt == nil {
		return
	}
	_ = sbkt.ForEachBucket(func(name []byte) error {
		nbkt := sbkt.Bucket(name)
		return nbkt.ForEachBucket(func(key []byte) error {
			bkt := nbkt.Bucket(key)
			from := g.snapshots[string(name)+"/"+string(key)]
			if parent := bkt.Get(keyParent); parent != nil {
				if to, ok := g.snapshots[string(name)+"/"+string(parent)]; ok {
					g.adj[from] = append(g.adj[from], to)
				}
			}
			g.labelEdges(from, bkt)
			return nil
		})
	})
}

// leaseRoots makes what live leases hold roots, and lists expired leases.
func (g *graph) leaseRoots(ns string, lbkt *bolt.Bucket) {
	if lbkt == nil {
		return
	}
	_ = lbkt.ForEachBucket(func(id []byte) error {
		bkt := lbkt.Bucket(id)
		if lab := bkt.Bucket(bucketKeyLabels); lab != nil {
			if v := lab.Get(labelExpireB); v != nil {
				if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil && !t.After(g.now) {
					g.expired = append(g.expired, gc.Node{Type: gc.ResourceLease, Namespace: ns, Key: string(id)})
					return nil
				} else if err == nil {
					g.expiresAt(t)
				}
			}
		}
		for _, r := range leaseResources(bkt) {
			var n int32
			var ok bool
			switch r.Type {
			case ResourceContent:
				n, ok = g.blob([]byte(r.ID))
			case ResourceIngests:
				n, ok = g.ingests[r.ID]
			default:
				n, ok = g.snapshots[r.Type[len(ResourceSnapshots)+1:]+"/"+r.ID]
			}
			if ok {
				g.roots = append(g.roots, n)
			}
		}
		return nil
	})
}

// pinRoots makes the pinned nodes of the namespace being scanned roots.
func (g *graph) pinRoots(pins []gc.Node) {
	for _, p := range pins {
		var n int32
		var ok bool
		switch p.Type {
		case gc.ResourceContent:
			n, ok = g.blob([]byte(p.Key))
		case gc.ResourceIngest:
			n, ok = g.ingests[p.Key]
		case gc.ResourceSnapshot:
			n, ok = g.snapshots[p.Key]
		}
		if ok {
			g.roots = append(g.roots, n)
		}
	}
}

// expiresAt notes an expiry to come.
func (g *graph) expiresAt(t time.Time) {
	if g.nextExpiry.IsZero() || t.Before(g.nextExpiry) {
		g.nextExpiry = t
	}
}

func (g *graph) imageRoots(ibkt *bolt.Bucket) {
	if ibkt == nil {
		return
	}
	_ = ibkt.ForEachBucket(func(name []byte) error {
		bkt := ibkt.Bucket(name)
		if tbkt := bkt.Bucket(bucketKeyTarget); tbkt != nil {
			if n, ok := g.blob(tbkt.Get(keyDigest)); ok {
				g.roots = append(g.roots, n)
			}
		}
		g.labelEdges(-1, bkt)
		return nil
	})
}

func (g *graph) containerRoots(cbkt *bolt.Bucket) {
	if cbkt == nil {
		return
	}
	_ = cbkt.ForEachBucket(func(id []byte) error {
		bkt := cbkt.Bucket(id)
		if key := bkt.Get(keySnapshotKey); key != nil {
			if n, ok := g.snapshots[string(bkt.Get(keySnapshotter))+"/"+string(key)]; ok {
				g.roots = append(g.roots, n)
			}
		}
		g.labelEdges(-1, bkt)
		return nil
	})
}

func (g *graph) sandboxRoots(sbkt *bolt.Bucket) {
	if sbkt == nil {
		return
	}
	_ = sbkt.ForEachBucket(func(id []byte) error {
		g.labelEdges(-1, sbkt.Bucket(id))
		return nil
	})
}

// mark returns, by node number, whether the roots reach each node.
func (g *graph) mark() []bool {
	reached := make([]bool, len(g.nodes))
	stack := make([]int32, 0, len(g.roots))
	for _, r := range g.roots {
		if !reached[r] {
			reached[r] = true
			stack = append(stack, r)
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range g.adj[n] {
			if !reached[c] {
				reached[c] = true
				stack = append(stack, c)
			}
		}
	}
	return reached
}

// garbage returns the nodes the roots do not reach, and the expired
// leases.
func (g *graph) garbage() []gc.Node {
	reached := g.mark()
	var out []gc.Node
	for i, n := range g.nodes {
		if !reached[i] {
			out = append(out, gc.Node{Type: n.typ, Namespace: n.ns, Key: string(n.key)})
		}
	}
	return append(out, g.expired...)
}
