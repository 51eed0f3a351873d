// Package convert translates between the messages of the management API
// (api/services/...) and the domain types of pkg/meta, pkg/content and
// pkg/events. The server's services and pkg/client both use it, so the two
// sides of the wire cannot drift apart.
//
// Conversions are pure: no validation, no errors. The services validate.
package convert

import (
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersapi "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	contentapi "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	eventsapi "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	imagesapi "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	leasesapi "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	namespacesapi "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// Timestamp converts t; the zero time becomes nil.
func Timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Time converts ts; nil becomes the zero time.
func Time(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// Duration converts d; zero becomes nil.
func Duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// NamespaceToProto converts a namespace.
func NamespaceToProto(ns meta.Namespace) *namespacesapi.Namespace {
	return &namespacesapi.Namespace{Name: ns.Name, Labels: ns.Labels}
}

// NamespaceFromProto converts a namespace.
func NamespaceFromProto(ns *namespacesapi.Namespace) meta.Namespace {
	return meta.Namespace{Name: ns.GetName(), Labels: ns.GetLabels()}
}

// InfoToProto converts a blob's info.
func InfoToProto(info content.Info) *contentapi.Info {
	return &contentapi.Info{
		Digest:    info.Digest.String(),
		Size:      info.Size,
		CreatedAt: Timestamp(info.CreatedAt),
		UpdatedAt: Timestamp(info.UpdatedAt),
		Labels:    info.Labels,
	}
}

// InfoFromProto converts a blob's info.
func InfoFromProto(info *contentapi.Info) content.Info {
	return content.Info{
		Digest:    digest.Digest(info.GetDigest()),
		Size:      info.GetSize(),
		CreatedAt: Time(info.GetCreatedAt()),
		UpdatedAt: Time(info.GetUpdatedAt()),
		Labels:    info.GetLabels(),
	}
}

// StatusToProto converts an ingest's status.
func StatusToProto(st content.Status) *contentapi.Status {
	return &contentapi.Status{
		Ref:       st.Ref,
		Offset:    st.Offset,
		Total:     st.Total,
		Expected:  st.Expected.String(),
		StartedAt: Timestamp(st.StartedAt),
		UpdatedAt: Timestamp(st.UpdatedAt),
	}
}

// StatusFromProto converts an ingest's status.
func StatusFromProto(st *contentapi.Status) content.Status {
	return content.Status{
		Ref:       st.GetRef(),
		Offset:    st.GetOffset(),
		Total:     st.GetTotal(),
		Expected:  digest.Digest(st.GetExpected()),
		StartedAt: Time(st.GetStartedAt()),
		UpdatedAt: Time(st.GetUpdatedAt()),
	}
}

// DescriptorToProto converts a descriptor.
func DescriptorToProto(d ocispec.Descriptor) *imagesapi.Descriptor {
	return &imagesapi.Descriptor{
		MediaType:   d.MediaType,
		Digest:      d.Digest.String(),
		Size:        d.Size,
		Annotations: d.Annotations,
	}
}

// DescriptorFromProto converts a descriptor.
func DescriptorFromProto(d *imagesapi.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:   d.GetMediaType(),
		Digest:      digest.Digest(d.GetDigest()),
		Size:        d.GetSize(),
		Annotations: d.GetAnnotations(),
	}
}

// ImageToProto converts an image.
func ImageToProto(img meta.Image) *imagesapi.Image {
	return &imagesapi.Image{
		Name:      img.Name,
		Labels:    img.Labels,
		Target:    DescriptorToProto(img.Target),
		CreatedAt: Timestamp(img.CreatedAt),
		UpdatedAt: Timestamp(img.UpdatedAt),
	}
}

// ImageFromProto converts an image.
func ImageFromProto(img *imagesapi.Image) meta.Image {
	return meta.Image{
		Name:      img.GetName(),
		Labels:    img.GetLabels(),
		Target:    DescriptorFromProto(img.GetTarget()),
		CreatedAt: Time(img.GetCreatedAt()),
		UpdatedAt: Time(img.GetUpdatedAt()),
	}
}

// ContainerToProto converts a container.
func ContainerToProto(c meta.Container) *containersapi.Container {
	return &containersapi.Container{
		Id:          c.ID,
		Labels:      c.Labels,
		Image:       c.Image,
		Runtime:     &containersapi.Runtime{Name: c.Runtime.Name, Options: c.Runtime.Options},
		Spec:        c.Spec,
		Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey,
		SandboxId:   c.SandboxID,
		Extensions:  c.Extensions,
		CreatedAt:   Timestamp(c.CreatedAt),
		UpdatedAt:   Timestamp(c.UpdatedAt),
		Status:      ContainerStatusToProto(c.Status),
	}
}

// ContainerStatusToProto converts the last known status of a task.
func ContainerStatusToProto(st meta.Status) *containersapi.Status {
	return &containersapi.Status{
		State:      st.State.String(),
		Pid:        st.Pid,
		ExitCode:   st.ExitCode,
		StartedAt:  Timestamp(st.StartedAt),
		FinishedAt: Timestamp(st.FinishedAt),
		Reason:     st.Reason,
		Message:    st.Message,
	}
}

// ContainerStatusFromProto converts the last known status of a task; a
// state it does not know is StateUnknown.
func ContainerStatusFromProto(st *containersapi.Status) meta.Status {
	state := meta.StateUnknown
	for s := meta.StateUnknown; s <= meta.StateExited; s++ {
		if s.String() == st.GetState() {
			state = s
		}
	}
	return meta.Status{
		State:      state,
		Pid:        st.GetPid(),
		ExitCode:   st.GetExitCode(),
		StartedAt:  Time(st.GetStartedAt()),
		FinishedAt: Time(st.GetFinishedAt()),
		Reason:     st.GetReason(),
		Message:    st.GetMessage(),
	}
}

// ContainerFromProto converts a container.
func ContainerFromProto(c *containersapi.Container) meta.Container {
	return meta.Container{
		ID:          c.GetId(),
		Labels:      c.GetLabels(),
		Image:       c.GetImage(),
		Runtime:     meta.Runtime{Name: c.GetRuntime().GetName(), Options: c.GetRuntime().GetOptions()},
		Spec:        c.GetSpec(),
		Snapshotter: c.GetSnapshotter(),
		SnapshotKey: c.GetSnapshotKey(),
		SandboxID:   c.GetSandboxId(),
		Extensions:  c.GetExtensions(),
		Status:      ContainerStatusFromProto(c.GetStatus()),
		CreatedAt:   Time(c.GetCreatedAt()),
		UpdatedAt:   Time(c.GetUpdatedAt()),
	}
}

// LeaseToProto converts a lease.
func LeaseToProto(l meta.Lease) *leasesapi.Lease {
	return &leasesapi.Lease{
		Id:        l.ID,
		Labels:    l.Labels,
		CreatedAt: Timestamp(l.CreatedAt),
		ExpiresAt: Timestamp(l.ExpiresAt),
	}
}

// LeaseFromProto converts a lease.
func LeaseFromProto(l *leasesapi.Lease) meta.Lease {
	return meta.Lease{
		ID:        l.GetId(),
		Labels:    l.GetLabels(),
		CreatedAt: Time(l.GetCreatedAt()),
		ExpiresAt: Time(l.GetExpiresAt()),
	}
}

// ResourceToProto converts a lease's resource.
func ResourceToProto(r meta.Resource) *leasesapi.Resource {
	return &leasesapi.Resource{Id: r.ID, Type: r.Type}
}

// ResourceFromProto converts a lease's resource.
func ResourceFromProto(r *leasesapi.Resource) meta.Resource {
	return meta.Resource{ID: r.GetId(), Type: r.GetType()}
}

// EnvelopeToProto converts an event envelope.
func EnvelopeToProto(e *events.Envelope) *eventsapi.Envelope {
	return &eventsapi.Envelope{
		Timestamp: Timestamp(e.Timestamp),
		Namespace: e.Namespace,
		Topic:     e.Topic,
		Event:     e.Event,
	}
}

// EnvelopeFromProto converts an event envelope.
func EnvelopeFromProto(e *eventsapi.Envelope) *events.Envelope {
	return &events.Envelope{
		Timestamp: Time(e.GetTimestamp()),
		Namespace: e.GetNamespace(),
		Topic:     e.GetTopic(),
		Event:     e.GetEvent(),
	}
}
