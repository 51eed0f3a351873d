package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

func putInfo(sb *bolt.Bucket, id uint64, info snapshot.Info) error {
	if err := sb.Put(keyID, binary.BigEndian.AppendUint64(nil, id)); err != nil {
		return err
	}
	if err := sb.Put(keyKind, []byte{byte(info.Kind)}); err != nil {
		return err
	}
	if info.Parent != "" {
		if err := sb.Put(keyParent, []byte(info.Parent)); err != nil {
			return err
		}
	}
	if err := putTime(sb, keyCreated, info.Created); err != nil {
		return err
	}
	if err := putTime(sb, keyUpdated, info.Updated); err != nil {
		return err
	}
	return putLabels(sb, info.Labels)
}

func putLabels(sb *bolt.Bucket, labels map[string]string) error {
	if sb.Bucket(bucketLabels) != nil {
		if err := sb.DeleteBucket(bucketLabels); err != nil {
			return err
		}
	}
	if len(labels) == 0 {
		return nil
	}
	lb, err := sb.CreateBucket(bucketLabels)
	if err != nil {
		return err
	}
	for k, v := range labels {
		if err := lb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

func putTime(sb *bolt.Bucket, key []byte, t time.Time) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	return sb.Put(key, b)
}

func putUsage(sb *bolt.Bucket, u snapshot.Usage) error {
	if err := sb.Put(keyInodes, binary.AppendVarint(nil, u.Inodes)); err != nil {
		return err
	}
	return sb.Put(keySize, binary.AppendVarint(nil, u.Size))
}

func readID(sb *bolt.Bucket) uint64 {
	b := sb.Get(keyID)
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func readKind(sb *bolt.Bucket) snapshot.Kind {
	b := sb.Get(keyKind)
	if len(b) != 1 {
		return snapshot.KindUnknown
	}
	return snapshot.Kind(b[0])
}

func readUsage(sb *bolt.Bucket) snapshot.Usage {
	inodes, _ := binary.Varint(sb.Get(keyInodes))
	size, _ := binary.Varint(sb.Get(keySize))
	return snapshot.Usage{Inodes: inodes, Size: size}
}

func readInfo(name string, sb *bolt.Bucket) (snapshot.Info, error) {
	info := snapshot.Info{
		Kind:   readKind(sb),
		Name:   name,
		Parent: string(sb.Get(keyParent)),
	}
	if err := info.Created.UnmarshalBinary(sb.Get(keyCreated)); err != nil {
		return snapshot.Info{}, fmt.Errorf("snapshot %q: created time: %w: %w", name, err, errdefs.ErrInternal)
	}
	if err := info.Updated.UnmarshalBinary(sb.Get(keyUpdated)); err != nil {
		return snapshot.Info{}, fmt.Errorf("snapshot %q: updated time: %w: %w", name, err, errdefs.ErrInternal)
	}
	if lb := sb.Bucket(bucketLabels); lb != nil {
		info.Labels = map[string]string{}
		if err := lb.ForEach(func(k, v []byte) error {
			info.Labels[string(k)] = string(v)
			return nil
		}); err != nil {
			return snapshot.Info{}, err
		}
	}
	return info, nil
}
