package meta

import (
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// A blob record is one value, not a bucket: the collector reads ten
// thousand of them in its pause, and a value costs one cursor step where
// a nested bucket costs a seek. The encoding:
//
//	byte    blobFormat
//	byte    flags (blobHasGCLabels: a label starts with "cri-runtime.io/gc.")
//	varint  size
//	varint  created, Unix nanoseconds
//	varint  updated, Unix nanoseconds
//	uvarint number of labels, then for each, sorted by key:
//	        uvarint len(key), key, uvarint len(value), value
const (
	blobFormat      = 1
	blobHasGCLabels = 1 << 0
)

// blobsBucket returns the bucket of the namespace's blob records.
func blobsBucket(btx *bolt.Tx, ns string) *bolt.Bucket {
	return nsBucket(btx, ns, bucketKeyContent, bucketKeyBlob)
}

// getBlob returns the encoded record of dgst in ns, nil if none.
func getBlob(btx *bolt.Tx, ns string, dgst digest.Digest) []byte {
	if bkt := blobsBucket(btx, ns); bkt != nil {
		return bkt.Get([]byte(dgst))
	}
	return nil
}

func hasBlob(btx *bolt.Tx, ns string, dgst digest.Digest) bool { return getBlob(btx, ns, dgst) != nil }

// putBlob writes the record of info in ns.
func putBlob(btx *bolt.Tx, ns string, info content.Info) error {
	bkt, err := createNSBucket(btx, ns, bucketKeyContent, bucketKeyBlob)
	if err != nil {
		return err
	}
	return bkt.Put([]byte(info.Digest), encodeBlob(info))
}

func encodeBlob(info content.Info) []byte {
	keys := make([]string, 0, len(info.Labels))
	var flags byte
	n := 32
	for k, v := range info.Labels {
		keys = append(keys, k)
		n += len(k) + len(v) + 8
		if strings.HasPrefix(k, labelGCPrefix) {
			flags |= blobHasGCLabels
		}
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, blobFormat, flags)
	b = binary.AppendVarint(b, info.Size)
	b = binary.AppendVarint(b, unixNano(info.CreatedAt))
	b = binary.AppendVarint(b, unixNano(info.UpdatedAt))
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, info.Labels[k])
	}
	return b
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// blobDecoder reads an encoded blob record.
type blobDecoder struct {
	b   []byte
	bad bool
}

func (d *blobDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *blobDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the record.
func (d *blobDecoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// decodeBlob decodes the record v of dgst; ok is false if v is corrupt.
func decodeBlob(dgst digest.Digest, v []byte) (info content.Info, ok bool) {
	if len(v) < 2 || v[0] != blobFormat {
		return content.Info{Digest: dgst}, false
	}
	d := blobDecoder{b: v[2:]}
	info = content.Info{Digest: dgst, Size: d.varint(), CreatedAt: fromUnixNano(d.varint()), UpdatedAt: fromUnixNano(d.varint())}
	n := d.uvarint()
	for i := uint64(0); i < n && !d.bad; i++ {
		k, val := d.bytes(), d.bytes()
		if info.Labels == nil {
			info.Labels = make(map[string]string, n)
		}
		info.Labels[string(k)] = string(val)
	}
	return info, !d.bad && len(d.b) == 0
}

// blobGCLabels calls fn with every label of the record v whose key starts
// with the GC prefix, without allocating; k and val alias v.
func blobGCLabels(v []byte, fn func(k, val []byte)) {
	if len(v) < 2 || v[1]&blobHasGCLabels == 0 {
		return
	}
	d := blobDecoder{b: v[2:]}
	d.varint()
	d.varint()
	d.varint()
	n := d.uvarint()
	for i := uint64(0); i < n && !d.bad; i++ {
		k, val := d.bytes(), d.bytes()
		if len(k) >= len(labelGCPrefix) && string(k[:len(labelGCPrefix)]) == labelGCPrefix {
			fn(k, val)
		}
	}
}
