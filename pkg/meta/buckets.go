package meta

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	bolt "go.etcd.io/bbolt"
)

// Bucket and field keys of the schema drawn in doc.go.
var (
	bucketKeyV1      = []byte("v1")
	bucketKeyVersion = []byte("version")

	bucketKeyLabels     = []byte("labels")
	bucketKeyImages     = []byte("images")
	bucketKeyContainers = []byte("containers")
	bucketKeySandboxes  = []byte("sandboxes")
	bucketKeyContent    = []byte("content")
	bucketKeyBlob       = []byte("blob")
	bucketKeyIngests    = []byte("ingests")
	bucketKeySnapshots  = []byte("snapshots")
	bucketKeyLeases     = []byte("leases")
	bucketKeyChildren   = []byte("children")
	bucketKeyTarget     = []byte("target")
	bucketKeyRuntime    = []byte("runtime")
	bucketKeyExtensions = []byte("extensions")
	bucketKeyAnnotation = []byte("annotations")

	keyCreatedAt   = []byte("createdat")
	keyUpdatedAt   = []byte("updatedat")
	keySize        = []byte("size")
	keyDigest      = []byte("digest")
	keyMediaType   = []byte("mediatype")
	keyName        = []byte("name")
	keyParent      = []byte("parent")
	keyKind        = []byte("kind")
	keyRef         = []byte("ref")
	keyExpireAt    = []byte("expireat")
	keyImage       = []byte("image")
	keyOptions     = []byte("options")
	keySpec        = []byte("spec")
	keySnapshotter = []byte("snapshotter")
	keySnapshotKey = []byte("snapshotkey")
	keySandboxID   = []byte("sandboxid")
	keyStatus      = []byte("status")
	keyConfig      = []byte("config")

	bucketKeyImageConfigs = []byte("imageconfigs")
)

// nsChildBuckets are the buckets a namespace may hold, in the order a
// non-empty namespace names them.
var nsChildBuckets = [][]byte{
	bucketKeyImages, bucketKeyContainers, bucketKeySandboxes,
	bucketKeyContent, bucketKeySnapshots, bucketKeyLeases, bucketKeyLabels,
	bucketKeyImageConfigs,
}

// bucket walks the path of keys from the root and returns the bucket at
// its end, nil if any is missing.
func bucket(tx *bolt.Tx, keys ...[]byte) *bolt.Bucket {
	bkt := tx.Bucket(keys[0])
	for _, k := range keys[1:] {
		if bkt == nil {
			return nil
		}
		bkt = bkt.Bucket(k)
	}
	return bkt
}

// createBucket walks the path of keys from the root, creating what is
// missing.
func createBucket(tx *bolt.Tx, keys ...[]byte) (*bolt.Bucket, error) {
	bkt, err := tx.CreateBucketIfNotExists(keys[0])
	if err != nil {
		return nil, err
	}
	for _, k := range keys[1:] {
		if bkt, err = bkt.CreateBucketIfNotExists(k); err != nil {
			return nil, err
		}
	}
	return bkt, nil
}

// nsBucket returns the bucket of namespace ns and of the object kind kind
// under it (kind may be nil for the namespace itself).
func nsBucket(tx *bolt.Tx, ns string, keys ...[]byte) *bolt.Bucket {
	return bucket(tx, append([][]byte{bucketKeyV1, []byte(ns)}, keys...)...)
}

// createNSBucket is nsBucket creating what is missing: the first write in
// a namespace creates it.
func createNSBucket(tx *bolt.Tx, ns string, keys ...[]byte) (*bolt.Bucket, error) {
	return createBucket(tx, append([][]byte{bucketKeyV1, []byte(ns)}, keys...)...)
}

// readLabels returns the labels sub-bucket of bkt as a map, nil if none.
func readLabels(bkt *bolt.Bucket) map[string]string {
	return readStringMap(bkt.Bucket(bucketKeyLabels))
}

func readStringMap(lbkt *bolt.Bucket) map[string]string {
	if lbkt == nil {
		return nil
	}
	m := map[string]string{}
	_ = lbkt.ForEach(func(k, v []byte) error {
		m[string(k)] = string(v)
		return nil
	})
	return m
}

// writeLabels replaces the labels sub-bucket of bkt with labels.
func writeLabels(bkt *bolt.Bucket, labels map[string]string) error {
	return writeStringMap(bkt, bucketKeyLabels, labels)
}

func writeStringMap(bkt *bolt.Bucket, key []byte, m map[string]string) error {
	if bkt.Bucket(key) != nil {
		if err := bkt.DeleteBucket(key); err != nil {
			return err
		}
	}
	if len(m) == 0 {
		return nil
	}
	mbkt, err := bkt.CreateBucket(key)
	if err != nil {
		return err
	}
	for k, v := range m {
		if err := mbkt.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// readBytesMap and writeBytesMap store the extensions of containers and
// sandboxes.
func readBytesMap(bkt *bolt.Bucket) map[string][]byte {
	if bkt == nil {
		return nil
	}
	m := map[string][]byte{}
	_ = bkt.ForEach(func(k, v []byte) error {
		m[string(k)] = append([]byte(nil), v...)
		return nil
	})
	return m
}

func writeBytesMap(bkt *bolt.Bucket, key []byte, m map[string][]byte) error {
	if bkt.Bucket(key) != nil {
		if err := bkt.DeleteBucket(key); err != nil {
			return err
		}
	}
	if len(m) == 0 {
		return nil
	}
	mbkt, err := bkt.CreateBucket(key)
	if err != nil {
		return err
	}
	for k, v := range m {
		if err := mbkt.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// readTime decodes a time written by putTime; zero if absent or corrupt.
func readTime(bkt *bolt.Bucket, key []byte) time.Time {
	var t time.Time
	if v := bkt.Get(key); v != nil {
		_ = t.UnmarshalBinary(v)
	}
	return t
}

func putTime(bkt *bolt.Bucket, key []byte, t time.Time) error {
	if t.IsZero() {
		return bkt.Delete(key)
	}
	v, err := t.MarshalBinary()
	if err != nil {
		return fmt.Errorf("time %v: %w", t, errdefs.ErrInvalidArgument)
	}
	return bkt.Put(key, v)
}

func writeTimes(bkt *bolt.Bucket, created, updated time.Time) error {
	if err := putTime(bkt, keyCreatedAt, created); err != nil {
		return err
	}
	return putTime(bkt, keyUpdatedAt, updated)
}

func readInt(bkt *bolt.Bucket, key []byte) int64 {
	v := bkt.Get(key)
	if v == nil {
		return 0
	}
	n, _ := binary.Varint(v)
	return n
}

func putInt(bkt *bolt.Bucket, key []byte, n int64) error {
	return bkt.Put(key, binary.AppendVarint(nil, n))
}

// putString stores s under key, or removes key when s is empty.
func putString(bkt *bolt.Bucket, key []byte, s string) error {
	if s == "" {
		return bkt.Delete(key)
	}
	return bkt.Put(key, []byte(s))
}

// putBytes stores b under key, or removes key when b is empty.
func putBytes(bkt *bolt.Bucket, key, b []byte) error {
	if len(b) == 0 {
		return bkt.Delete(key)
	}
	return bkt.Put(key, b)
}

// copyBytes copies a value out of a transaction's memory.
func copyBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
