package meta

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Check verifies the database as fsck would: the schema version, that no
// bucket or key is out of place, that every strong reference resolves
// (image targets, containers' snapshots, lease resources, snapshot parents
// and children) and that every blob and snapshot record has its backend
// object. It holds writers and the collector off while it runs and returns
// an Internal error listing every problem.
//
// GC label references (LabelGCRefContent, LabelGCRefSnapshot) are weak, as
// the collector reads them, and are not checked: an index names the
// manifests of every platform though a pull fetches one, a manifest the
// layers a pull skipped because their snapshots exist, and a failed pull
// the blobs it never reached.
func (db *DB) Check(ctx context.Context) error {
	db.gcMu.Lock()
	defer db.gcMu.Unlock()
	db.wlock.Lock()
	defer db.wlock.Unlock()
	c := &checker{db: db}
	if err := db.view(ctx, c.scan); err != nil {
		return err
	}
	c.checkBackends(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(c.problems) == 0 {
		return nil
	}
	return fmt.Errorf("metadata check: %d problems: %s: %w",
		len(c.problems), strings.Join(c.problems, "; "), errdefs.ErrInternal)
}

type checker struct {
	db       *DB
	problems []string
	blobs    []checkedBlob
	snaps    []checkedSnapshot
}

type checkedBlob struct {
	ns   string
	dgst digest.Digest
	size int64
}

type checkedSnapshot struct {
	ns, name string
	r        record
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// scan checks the structure and the references, in one read transaction.
func (c *checker) scan(btx *bolt.Tx) error {
	_ = btx.ForEach(func(k []byte, _ *bolt.Bucket) error {
		if string(k) != string(bucketKeyV1) {
			c.addf("stray root bucket %q", k)
		}
		return nil
	})
	v1 := btx.Bucket(bucketKeyV1)
	if v1 == nil {
		c.addf("no %s bucket", bucketKeyV1)
		return nil
	}
	if v, err := readVersion(btx); err != nil || v != SchemaVersion() {
		c.addf("schema version %d (%v), want %d", v, err, SchemaVersion())
	}
	return v1.ForEach(func(k, v []byte) error {
		switch {
		case v == nil:
			c.checkNamespace(btx, string(k), v1.Bucket(k))
		case string(k) != string(bucketKeyVersion):
			c.addf("stray key %q in %s", k, bucketKeyV1)
		}
		return nil
	})
}

func (c *checker) checkNamespace(btx *bolt.Tx, ns string, nbkt *bolt.Bucket) {
	if err := identifiers.Validate(ns); err != nil {
		c.addf("namespace %q: %v", ns, err)
	}
	_ = nbkt.ForEach(func(k, v []byte) error {
		if v != nil || !slices.ContainsFunc(nsChildBuckets, func(b []byte) bool { return bytes.Equal(b, k) }) {
			c.addf("namespace %q: stray entry %q", ns, k)
		}
		return nil
	})
	c.checkImages(btx, ns, nbkt.Bucket(bucketKeyImages))
	c.checkImageConfigs(ns, nbkt.Bucket(bucketKeyImages), nbkt.Bucket(bucketKeyImageConfigs))
	c.checkContainers(btx, ns, nbkt.Bucket(bucketKeyContainers))
	c.checkSandboxes(ns, nbkt.Bucket(bucketKeySandboxes), nbkt.Bucket(bucketKeyContainers))
	if cbkt := nbkt.Bucket(bucketKeyContent); cbkt != nil {
		_ = cbkt.ForEach(func(k, _ []byte) error {
			if string(k) != string(bucketKeyBlob) && string(k) != string(bucketKeyIngests) {
				c.addf("namespace %q: stray content entry %q", ns, k)
			}
			return nil
		})
		c.checkBlobs(ns, cbkt.Bucket(bucketKeyBlob))
		c.checkIngests(ns, cbkt.Bucket(bucketKeyIngests))
	}
	c.checkSnapshots(ns, nbkt.Bucket(bucketKeySnapshots))
	c.checkLeases(btx, ns, nbkt.Bucket(bucketKeyLeases))
}

func (c *checker) checkImages(btx *bolt.Tx, ns string, ibkt *bolt.Bucket) {
	if ibkt == nil {
		return
	}
	_ = ibkt.ForEachBucket(func(k []byte) error {
		img := readImage(string(k), ibkt.Bucket(k))
		what := fmt.Sprintf("namespace %q: image %q", ns, img.Name)
		if err := validateImage(img); err != nil {
			c.addf("%s: %v", what, err)
		} else if !hasBlob(btx, ns, img.Target.Digest) {
			c.addf("%s: target %s is not in the namespace's content", what, img.Target.Digest)
		}
		return nil
	})
}

func (c *checker) checkContainers(btx *bolt.Tx, ns string, cbkt *bolt.Bucket) {
	if cbkt == nil {
		return
	}
	_ = cbkt.ForEachBucket(func(k []byte) error {
		ctr := readContainer(string(k), cbkt.Bucket(k))
		what := fmt.Sprintf("namespace %q: container %q", ns, ctr.ID)
		if err := validateContainer(ctr); err != nil {
			c.addf("%s: %v", what, err)
		} else if err := c.db.checkSnapshotRef(btx, ns, ctr); err != nil {
			c.addf("%s: %v", what, err)
		}
		if _, err := readStatus(cbkt.Bucket(k)); err != nil {
			c.addf("%s: %v", what, err)
		}
		if ctr.SandboxID != "" {
			ibkt := nsBucket(btx, ns, bucketKeySandboxes, []byte(ctr.SandboxID), bucketKeyContainers)
			if ibkt == nil || !hasKey(ibkt, k) {
				c.addf("%s: sandbox %q does not list it", what, ctr.SandboxID)
			}
		}
		return nil
	})
}

// checkImageConfigs checks that the config index lists exactly the images
// with a config digest, each under its own.
func (c *checker) checkImageConfigs(ns string, ibkt, cbkt *bolt.Bucket) {
	indexed := map[string]string{}
	if cbkt != nil {
		_ = cbkt.ForEachBucket(func(dgst []byte) error {
			return cbkt.Bucket(dgst).ForEach(func(name, _ []byte) error {
				indexed[string(name)] = string(dgst)
				return nil
			})
		})
	}
	if ibkt != nil {
		_ = ibkt.ForEachBucket(func(name []byte) error {
			img := readImage(string(name), ibkt.Bucket(name))
			if got := indexed[img.Name]; got != img.ConfigDigest.String() {
				c.addf("namespace %q: image %q of config %q is indexed under %q", ns, img.Name, img.ConfigDigest, got)
			}
			delete(indexed, img.Name)
			return nil
		})
	}
	for name, dgst := range indexed {
		c.addf("namespace %q: config index %s names image %q, which does not exist", ns, dgst, name)
	}
}

// checkSandboxes checks that every container a sandbox lists exists and
// names it, and that its status reads.
func (c *checker) checkSandboxes(ns string, sbkt, cbkt *bolt.Bucket) {
	if sbkt == nil {
		return
	}
	_ = sbkt.ForEachBucket(func(k []byte) error {
		bkt := sbkt.Bucket(k)
		what := fmt.Sprintf("namespace %q: sandbox %q", ns, k)
		if err := validateSandbox(readSandbox(string(k), bkt)); err != nil {
			c.addf("%s: %v", what, err)
		}
		if _, err := readStatus(bkt); err != nil {
			c.addf("%s: %v", what, err)
		}
		for _, id := range sandboxContainers(bkt) {
			var ctr *bolt.Bucket
			if cbkt != nil {
				ctr = cbkt.Bucket([]byte(id))
			}
			if ctr == nil || string(ctr.Get(keySandboxID)) != string(k) {
				c.addf("%s: lists container %q, which is not its own", what, id)
			}
		}
		return nil
	})
}

// hasKey reports whether bkt holds the key k, whatever its value.
func hasKey(bkt *bolt.Bucket, k []byte) bool {
	key, _ := bkt.Cursor().Seek(k)
	return bytes.Equal(key, k)
}

func (c *checker) checkBlobs(ns string, bbkt *bolt.Bucket) {
	if bbkt == nil {
		return
	}
	_ = bbkt.ForEach(func(k, v []byte) error {
		what := fmt.Sprintf("namespace %q: content %q", ns, k)
		if err := digest.Digest(k).Validate(); err != nil {
			c.addf("%s: %v", what, err)
			return nil
		}
		info, ok := decodeBlob(digest.Digest(k), v)
		if !ok {
			c.addf("%s: corrupt record", what)
			return nil
		}
		c.blobs = append(c.blobs, checkedBlob{ns: ns, dgst: info.Digest, size: info.Size})
		return nil
	})
}

func (c *checker) checkIngests(ns string, ibkt *bolt.Bucket) {
	if ibkt == nil {
		return
	}
	_ = ibkt.ForEach(func(k, v []byte) error {
		if v != nil || len(ibkt.Bucket(k).Get(keyRef)) == 0 {
			c.addf("namespace %q: ingest %q has no backend ref", ns, k)
		}
		return nil
	})
}

func (c *checker) checkSnapshots(ns string, sbkt *bolt.Bucket) {
	if sbkt == nil {
		return
	}
	_ = sbkt.ForEachBucket(func(name []byte) error {
		sn := string(name)
		if _, ok := c.db.snapshotters[sn]; !ok {
			c.addf("namespace %q: records of unknown snapshotter %q", ns, sn)
			return nil
		}
		bkt := sbkt.Bucket(name)
		return bkt.ForEachBucket(func(k []byte) error {
			c.checkSnapshot(ns, sn, bkt, string(k))
			return nil
		})
	})
}

func (c *checker) checkSnapshot(ns, sn string, bkt *bolt.Bucket, key string) {
	sbkt := bkt.Bucket([]byte(key))
	r := readRecord(key, sbkt)
	what := fmt.Sprintf("namespace %q: snapshot %q of %q", ns, key, sn)
	if r.bkey == "" {
		c.addf("%s: no backend key", what)
	}
	if r.info.Kind == snapshot.KindUnknown {
		c.addf("%s: unknown kind %q", what, sbkt.Get(keyKind))
	}
	if p := r.info.Parent; p != "" {
		pbkt := bkt.Bucket([]byte(p))
		switch {
		case pbkt == nil:
			c.addf("%s: missing parent %q", what, p)
		case pbkt.Bucket(bucketKeyChildren) == nil || pbkt.Bucket(bucketKeyChildren).Get([]byte(key)) == nil:
			c.addf("%s: parent %q does not list it as a child", what, p)
		}
	}
	if cbkt := sbkt.Bucket(bucketKeyChildren); cbkt != nil {
		_ = cbkt.ForEach(func(child, _ []byte) error {
			if cb := bkt.Bucket(child); cb == nil || string(cb.Get(keyParent)) != key {
				c.addf("%s: child %q does not exist or has another parent", what, child)
			}
			return nil
		})
	}
	c.snaps = append(c.snaps, checkedSnapshot{ns: ns, name: sn, r: r})
}

func (c *checker) checkLeases(btx *bolt.Tx, ns string, lbkt *bolt.Bucket) {
	if lbkt == nil {
		return
	}
	_ = lbkt.ForEachBucket(func(id []byte) error {
		bkt := lbkt.Bucket(id)
		what := fmt.Sprintf("namespace %q: lease %q", ns, id)
		if _, err := leaseExpiry(readLabels(bkt)); err != nil {
			c.addf("%s: %v", what, err)
		}
		for _, r := range leaseResources(bkt) {
			path, err := c.db.resourcePath(r)
			if err != nil {
				c.addf("%s: %v", what, err)
			} else if !resourceExists(btx, ns, r, path) {
				c.addf("%s: holds missing %s %q", what, r.Type, r.ID)
			}
		}
		return nil
	})
}

// checkBackends checks that every recorded blob and snapshot exists in its
// backend, outside the read transaction.
func (c *checker) checkBackends(ctx context.Context) {
	for _, b := range c.blobs {
		info, err := c.db.content.Info(ctx, b.dgst)
		switch {
		case err != nil:
			c.addf("namespace %q: content %s: backend: %v", b.ns, b.dgst, err)
		case info.Size != b.size:
			c.addf("namespace %q: content %s: size %d, backend has %d", b.ns, b.dgst, b.size, info.Size)
		}
	}
	for _, s := range c.snaps {
		info, err := c.db.snapshotters[s.name].sn.Stat(ctx, s.r.bkey)
		switch {
		case err != nil:
			c.addf("namespace %q: snapshot %q of %q: backend %q: %v", s.ns, s.r.info.Name, s.name, s.r.bkey, err)
		case info.Kind != s.r.info.Kind:
			c.addf("namespace %q: snapshot %q of %q: kind %v, backend has %v", s.ns, s.r.info.Name, s.name, s.r.info.Kind, info.Kind)
		}
	}
}
