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

func holders(btx *bolt.Tx, ns string, now time.Time, content []digest.Digest, snapshots []string) []Holder {
	g := scanGraph(btx, now, graphHint{})
	reached := g.mark()
	// The nodes of ns by kind and key ("<snapshotter>/<key>" for snapshots).
	ids := map[gc.ResourceType]map[string]int32{gc.ResourceContent: {}, gc.ResourceIngest: {}, gc.ResourceSnapshot: {}}
	for i, n := range g.nodes {
		if n.ns == ns {
			ids[n.typ][string(n.key)] = int32(i)
		}
	}
	// wanted: the resources asked about that exist and are kept.
	wanted := map[int32]bool{}
	for _, d := range content {
		if id, ok := ids[gc.ResourceContent][d.String()]; ok && reached[id] {
			wanted[id] = true
		}
	}
	for _, s := range snapshots {
		if id, ok := ids[gc.ResourceSnapshot][s]; ok && reached[id] {
			wanted[id] = true
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	explained := map[int32]bool{}
	var out []Holder
	add := func(h Holder, from []int32) {
		for _, id := range reach(g, from) {
			if !wanted[id] {
				continue
			}
			explained[id] = true
			n := g.nodes[id]
			if n.typ == gc.ResourceContent {
				h.Content = append(h.Content, digest.Digest(n.key))
			} else {
				h.Snapshots = append(h.Snapshots, string(n.key))
			}
		}
		if len(h.Content)+len(h.Snapshots) > 0 {
			out = append(out, h)
		}
	}
	if lbkt := nsBucket(btx, ns, bucketKeyLeases); lbkt != nil {
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
				if id, ok := ids[typ][key]; ok {
					from = append(from, id)
				}
			}
			add(Holder{Kind: HolderLease, ID: l.ID, Lease: l}, from)
			return nil
		})
	}
	if ibkt := nsBucket(btx, ns, bucketKeyImages); ibkt != nil {
		_ = ibkt.ForEachBucket(func(name []byte) error {
			if tbkt := ibkt.Bucket(name).Bucket(bucketKeyTarget); tbkt != nil {
				if id, ok := ids[gc.ResourceContent][string(tbkt.Get(keyDigest))]; ok {
					add(Holder{Kind: HolderImage, ID: string(name)}, []int32{id})
				}
			}
			return nil
		})
	}
	other := Holder{Kind: HolderOther}
	for id := range wanted {
		if explained[id] {
			continue
		}
		n := g.nodes[id]
		if n.typ == gc.ResourceContent {
			other.Content = append(other.Content, digest.Digest(n.key))
		} else {
			other.Snapshots = append(other.Snapshots, string(n.key))
		}
	}
	if len(other.Content)+len(other.Snapshots) > 0 {
		sort.Slice(other.Content, func(i, j int) bool { return other.Content[i] < other.Content[j] })
		sort.Strings(other.Snapshots)
		out = append(out, other)
	}
	return out
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
