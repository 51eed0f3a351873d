package storage

import (
	"fmt"

	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// WalkInfo calls fn with the info of every snapshot that matches any of
// filters (all when none). The fields are kind (as Kind.String gives it:
// "Active", "View", "Committed"), name, parent and labels.<key>.
//
// fn runs inside the transaction: backends should collect the infos and
// call their callers outside it.
func (t *Tx) WalkInfo(fn func(snapshot.Info) error, fs ...string) error {
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return fmt.Errorf("snapshot walk: %w", err)
	}
	bkt, err := t.snapshots()
	if err != nil || bkt == nil {
		return err
	}
	return bkt.ForEachBucket(func(k []byte) error {
		info, err := readInfo(string(k), bkt.Bucket(k))
		if err != nil {
			return err
		}
		if !filter.Match(Adapt(info)) {
			return nil
		}
		return fn(info)
	})
}

// Adapt exposes info to a filter with the fields WalkInfo documents.
func Adapt(info snapshot.Info) filters.Adaptor {
	fields := map[string]string{
		"kind": info.Kind.String(),
		"name": info.Name,
	}
	if info.Parent != "" {
		fields["parent"] = info.Parent
	}
	return filters.Map(fields, info.Labels)
}
