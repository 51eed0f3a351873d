package cri

import (
	"bytes"
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// decodeCache keeps what ListPodSandbox and ListContainers built of each
// record the last time, for kubelet's relist, which calls both every
// second: copying every record out of bbolt and decoding its protobuf
// config and JSON info again was most of each call, and its allocations
// most of its tail. Records are read in place (meta's View) and an entry
// is used while the record's stored status, creation time, sandbox,
// config, info and labels are the bytes it was built from; the items are
// shared, read-only.
type decodeCache struct {
	pods       listCache[podItem]
	containers listCache[containerItem]
	// blobs is what ImageStatus decoded of content blobs (image_cache.go).
	blobs blobCache
}

// listCache is the entries of one kind of record, by ID.
type listCache[T listItem] struct {
	mu sync.Mutex
	m  map[string]*listEntry[T]
	// last is the entries of the last walk, of namespace ns, as of the
	// database's generation gen: the answer while nothing is written.
	ns   string
	gen  uint64
	last []*listEntry[T]
	// wire is the encoding of each entry's message (list_wire.go).
	wire wireCache
}

// listEntry is what was built of one record, from raw and labels.
type listEntry[T listItem] struct {
	id     string
	raw    rawFields
	labels map[string]string // the record's, ours included
	status meta.Status
	item   T
	err    error // of decoding the config or info: reported if listed
}

// recordViewer is a store's View.
type recordViewer func(ctx context.Context, since uint64, fn func(meta.RecordView) error) (uint64, error)

// listItem is what is built of a record: podItem, containerItem.
type listItem interface {
	// extension names the extension, beyond the config and the info,
	// that the item is built from too ("" for none).
	extension() string
	// message is what the list reports of the record, shared and
	// read-only; nil when it could not be decoded.
	message() proto.Message
}

// rawFields are the stored values an entry is built from: the status,
// the creation time, the sandbox ID, the CRI config and info, and the
// item's extension.
type rawFields [6][]byte

func viewFields(v meta.RecordView, ext string) rawFields {
	r := rawFields{v.RawStatus(), v.RawCreatedAt(), v.SandboxID()}
	v.ForEachExtension(func(name, value []byte) {
		switch string(name) {
		case ExtConfig:
			r[3] = value
		case ExtInfo:
			r[4] = value
		case ext:
			if ext != "" {
				r[5] = value
			}
		}
	})
	return r
}

func (r *rawFields) equal(o *rawFields) bool {
	for i := range r {
		if !bytes.Equal(r[i], o[i]) || (r[i] == nil) != (o[i] == nil) {
			return false
		}
	}
	return true
}

// record is a copy of what the entry was built from, as a record with no
// spec and no other extension.
func (e *listEntry[T]) record() (id string, labels map[string]string, ext map[string][]byte) {
	// As meta's List copies them: an empty value is nil.
	ext = map[string][]byte{}
	if len(e.raw[3]) > 0 {
		ext[ExtConfig] = e.raw[3]
	}
	if len(e.raw[4]) > 0 {
		ext[ExtInfo] = e.raw[4]
	}
	return e.id, e.labels, ext
}

// walk calls view (a store's View) and returns the entry of every record,
// in ID order, building with build those of the records that changed
// since the last walk. It forgets the records no longer there. The slice
// returned is shared: read-only.
func (c *listCache[T]) walk(ctx context.Context, view recordViewer, build func(*listEntry[T])) ([]*listEntry[T], error) {
	ns, _ := namespaces.Namespace(ctx)
	c.mu.Lock()
	since, last := c.gen, c.last
	if c.ns != ns {
		since = 0
	}
	n := len(c.m)
	c.mu.Unlock()
	var all []*listEntry[T]
	built := 0
	gen, err := view(ctx, since, func(v meta.RecordView) error {
		if all == nil {
			all = make([]*listEntry[T], 0, n)
		}
		e, fresh := c.entry(v, build)
		if fresh {
			built++
		}
		all = append(all, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if since != 0 && gen == since {
		return last, nil
	}
	c.mu.Lock()
	if gen > c.gen || c.ns != ns {
		c.ns, c.gen, c.last = ns, gen, all
	}
	if built > 0 || len(c.m) != len(all) {
		keep := make(map[string]bool, len(all))
		for _, e := range all {
			keep[e.id] = true
		}
		for id := range c.m {
			if !keep[id] {
				c.wire.drop(c.m[id].item.message())
				delete(c.m, id)
			}
		}
	}
	c.mu.Unlock()
	return all, nil
}

// entry returns the entry of the record v, built anew (fresh) if the
// record changed since the last one.
func (c *listCache[T]) entry(v meta.RecordView, build func(*listEntry[T])) (e *listEntry[T], fresh bool) {
	var zero T
	raw := viewFields(v, zero.extension())
	c.mu.Lock()
	e = c.m[string(v.ID())]
	c.mu.Unlock()
	if e != nil && e.raw.equal(&raw) && v.LabelsEqual(e.labels) {
		return e, false
	}
	e = &listEntry[T]{id: string(v.ID()), labels: v.Labels()}
	for i, b := range raw {
		if b != nil {
			e.raw[i] = bytes.Clone(b)
		}
	}
	e.status, _ = meta.DecodeStatus(e.raw[0]) // as meta's List: Check reports a corrupt one
	build(e)
	if e.err == nil {
		c.wire.put(e.item.message())
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*listEntry[T]{}
	}
	if old := c.m[e.id]; old != nil {
		c.wire.drop(old.item.message())
	}
	c.m[e.id] = e
	c.mu.Unlock()
	return e, true
}
