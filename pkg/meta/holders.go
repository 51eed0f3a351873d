package meta

import (
	"context"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
)

// The kinds of Holder.
const (
	HolderLease = "lease" // a live lease
	HolderImage = "image" // another image of the namespace
	HolderOther = "other" // a container, a gc.root label, an unleased ingest
)

// Holder is what keeps some resources of a namespace from the collector,
// directly or through the references it reaches.
type Holder struct {
	Kind string
	// ID is the lease ID or the image name; empty for HolderOther.
	ID string
	// Lease is the lease, for HolderLease.
	Lease Lease
	// Content and Snapshots are those of the resources asked about that
	// it reaches; snapshots as "<snapshotter>/<key>".
	Content   []digest.Digest
	Snapshots []string
}

// Holders tells why the blobs content and the snapshots snapshots (as
// "<snapshotter>/<key>") of the namespace of ctx are still there: for
// each that exists and that the collector would keep, the live leases
// and the images that reach it, else HolderOther. A resource reached by
// several is listed under each. Those that do not exist are left out.
// `images rm --sync` reports with it what it could not free.
func (db *DB) Holders(ctx context.Context, content []digest.Digest, snapshots []string) ([]Holder, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	var out []Holder
	err = db.view(ctx, func(btx *bolt.Tx) error {
		out = holders(btx, ns, time.Now(), content, snapshots)
		return nil
	})
	return out, err
}

// explainer finds, for the wanted nodes of one namespace, what reaches
// each.
type explainer struct {
	g         *graph
	ids       map[gc.ResourceType]map[string]int32 // the namespace's nodes by kind and key
	wanted    map[int32]bool                       // the resources asked about that exist and are kept
	explained map[int32]bool
	out       []Holder
}

func holders(btx *bolt.Tx, ns string, now time.Time, content []digest.Digest, snapshots []string) []Holder {
	g := scanGraph(btx, now, graphHint{}, nil)
	reached := g.mark()
	x := &explainer{g: g, wanted: map[int32]bool{}, explained: map[int32]bool{},
		ids: map[gc.ResourceType]map[string]int32{gc.ResourceContent: {}, gc.ResourceIngest: {}, gc.ResourceSnapshot: {}}}
	for i, n := range g.nodes {
		if n.ns == ns {
			x.ids[n.typ][string(n.key)] = int32(i)
		}
	}
	for _, d := range content {
		if id, ok := x.ids[gc.ResourceContent][d.String()]; ok && reached[id] {
			x.wanted[id] = true
		}
	}
	for _, s := range snapshots {
		if id, ok := x.ids[gc.ResourceSnapshot][s]; ok && reached[id] {
			x.wanted[id] = true
		}
	}
	if len(x.wanted) == 0 {
		return nil
	}
	x.leases(nsBucket(btx, ns, bucketKeyLeases), now)
	x.images(nsBucket(btx, ns, bucketKeyImages))
	other := Holder{Kind: HolderOther}
	for id := range x.wanted {
		if !x.explained[id] {
			other.add(g.nodes[id])
		}
	}
	if len(other.Content)+len(other.Snapshots) > 0 {
		sort.Slice(other.Content, func(i, j int) bool { return other.Content[i] < other.Content[j] })
		sort.Strings(other.Snapshots)
		x.out = append(x.out, other)
	}
	return x.out
}

// add lists the node n in h.
func (h *Holder) add(n node) {
	if n.typ == gc.ResourceContent {
		h.Content = append(h.Content, digest.Digest(n.key))
	} else {
		h.Snapshots = append(h.Snapshots, string(n.key))
	}
}

// hold adds h with the wanted nodes reachable from from, if any.
func (x *explainer) hold(h Holder, from []int32) {
	for _, id := range reach(x.g, from) {
		if x.wanted[id] {
			x.explained[id] = true
			h.add(x.g.nodes[id])
		}
	}
	if len(h.Content)+len(h.Snapshots) > 0 {
		x.out = append(x.out, h)
	}
}

// leases explains by the live leases of lbkt.
func (x *explainer) leases(lbkt *bolt.Bucket, now time.Time) {
	if lbkt == nil {
		return
	}
	_ = lbkt.ForEachBucket(func(k []byte) error {
		bkt := lbkt.Bucket(k)
		l := Lease{ID: string(k), Labels: readLabels(bkt), CreatedAt: readTime(bkt, keyCreatedAt)}
		l.ExpiresAt, _ = leaseExpiry(l.Labels)
		if !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(now) {
			return nil // expired: the collector deletes it
		}
		var from []int32
		for _, r := range leaseResources(bkt) {
			typ, key := gc.ResourceContent, r.ID
			switch r.Type {
			case ResourceContent:
			case ResourceIngests:
				typ = gc.ResourceIngest
			default:
				typ, key = gc.ResourceSnapshot, r.Type[len(ResourceSnapshots)+1:]+"/"+r.ID
			}
			if id, ok := x.ids[typ][key]; ok {
				from = append(from, id)
			}
		}
		x.hold(Holder{Kind: HolderLease, ID: l.ID, Lease: l}, from)
		return nil
	})
}

// images explains by the images of ibkt, through their targets.
func (x *explainer) images(ibkt *bolt.Bucket) {
	if ibkt == nil {
		return
	}
	_ = ibkt.ForEachBucket(func(name []byte) error {
		if tbkt := ibkt.Bucket(name).Bucket(bucketKeyTarget); tbkt != nil {
			if id, ok := x.ids[gc.ResourceContent][string(tbkt.Get(keyDigest))]; ok {
				x.hold(Holder{Kind: HolderImage, ID: string(name)}, []int32{id})
			}
		}
		return nil
	})
}

// reach returns the nodes reachable from from, from included.
func reach(g *graph, from []int32) []int32 {
	seen := map[int32]bool{}
	stack := append([]int32(nil), from...)
	var out []int32
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
		stack = append(stack, g.adj[n]...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
