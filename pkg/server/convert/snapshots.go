package convert

import (
	snapshotsapi "github.com/cri-runtime/cri-runtime/api/services/snapshots/v1"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// KindToProto converts a snapshot's kind.
func KindToProto(k snapshot.Kind) snapshotsapi.Kind {
	switch k {
	case snapshot.KindView:
		return snapshotsapi.Kind_VIEW
	case snapshot.KindActive:
		return snapshotsapi.Kind_ACTIVE
	case snapshot.KindCommitted:
		return snapshotsapi.Kind_COMMITTED
	}
	return snapshotsapi.Kind_UNKNOWN
}

// KindFromProto converts a snapshot's kind.
func KindFromProto(k snapshotsapi.Kind) snapshot.Kind {
	switch k {
	case snapshotsapi.Kind_VIEW:
		return snapshot.KindView
	case snapshotsapi.Kind_ACTIVE:
		return snapshot.KindActive
	case snapshotsapi.Kind_COMMITTED:
		return snapshot.KindCommitted
	}
	return snapshot.KindUnknown
}

// SnapshotInfoToProto converts a snapshot's info.
func SnapshotInfoToProto(info snapshot.Info) *snapshotsapi.Info {
	return &snapshotsapi.Info{
		Name:      info.Name,
		Parent:    info.Parent,
		Kind:      KindToProto(info.Kind),
		CreatedAt: Timestamp(info.Created),
		UpdatedAt: Timestamp(info.Updated),
		Labels:    info.Labels,
	}
}

// SnapshotInfoFromProto converts a snapshot's info.
func SnapshotInfoFromProto(info *snapshotsapi.Info) snapshot.Info {
	return snapshot.Info{
		Kind:    KindFromProto(info.GetKind()),
		Name:    info.GetName(),
		Parent:  info.GetParent(),
		Labels:  info.GetLabels(),
		Created: Time(info.GetCreatedAt()),
		Updated: Time(info.GetUpdatedAt()),
	}
}

// MountsToProto converts mounts.
func MountsToProto(mounts []snapshot.Mount) []*snapshotsapi.Mount {
	out := make([]*snapshotsapi.Mount, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, &snapshotsapi.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	return out
}

// MountsFromProto converts mounts.
func MountsFromProto(mounts []*snapshotsapi.Mount) []snapshot.Mount {
	out := make([]snapshot.Mount, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, snapshot.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: m.GetOptions()})
	}
	return out
}

// UsageToProto converts a snapshot's usage.
func UsageToProto(u snapshot.Usage) *snapshotsapi.UsageResponse {
	return &snapshotsapi.UsageResponse{Size: u.Size, Inodes: u.Inodes}
}

// UsageFromProto converts a snapshot's usage.
func UsageFromProto(u *snapshotsapi.UsageResponse) snapshot.Usage {
	return snapshot.Usage{Size: u.GetSize(), Inodes: u.GetInodes()}
}
