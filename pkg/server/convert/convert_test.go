package convert

import (
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	containersapi "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	contentapi "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	eventsapi "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	imagesapi "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	leasesapi "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	namespacesapi "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	snapshotsapi "github.com/cri-runtime/cri-runtime/api/services/snapshots/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

var (
	t1  = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	t2  = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	dg  = digest.FromString("convert")
	lbl = map[string]string{"a": "1", "cri-runtime.io/gc.ref.content.l.0": dg.String()}
)

// wire converts in to its message, sends the message through its wire
// form (Marshal, then Unmarshal into a fresh message) and converts it
// back: what a value is once it has crossed the management API.
func wire[D any, P proto.Message](t *testing.T, in D, to func(D) P, from func(P) D) D {
	t.Helper()
	msg := to(in)
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	back := msg.ProtoReflect().New().Interface().(P)
	if err := proto.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	return from(back)
}

// roundTrips checks that each of cases crosses the wire unchanged.
func roundTrips[D any, P proto.Message](t *testing.T, to func(D) P, from func(P) D, cases map[string]D) {
	t.Helper()
	for name, in := range cases {
		if got := wire(t, in, to, from); !reflect.DeepEqual(got, in) {
			t.Errorf("%s: round trip\n got %#v\nwant %#v", name, got, in)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	t.Run("namespace", func(t *testing.T) {
		roundTrips(t, NamespaceToProto, NamespaceFromProto, map[string]meta.Namespace{
			"zero":   {},
			"labels": {Name: "ns", Labels: lbl},
		})
	})
	t.Run("content info", func(t *testing.T) {
		roundTrips(t, InfoToProto, InfoFromProto, map[string]content.Info{
			"zero": {},
			"full": {Digest: dg, Size: 1 << 40, CreatedAt: t1, UpdatedAt: t2, Labels: lbl},
		})
	})
	t.Run("ingest status", func(t *testing.T) {
		roundTrips(t, StatusToProto, StatusFromProto, map[string]content.Status{
			"zero":    {},
			"full":    {Ref: "fetch-x", Offset: 10, Total: 20, Expected: dg, StartedAt: t1, UpdatedAt: t2},
			"unknown": {Ref: "r", Offset: 5},
		})
	})
	t.Run("descriptor", func(t *testing.T) {
		roundTrips(t, DescriptorToProto, DescriptorFromProto, map[string]ocispec.Descriptor{
			"zero": {},
			"full": {MediaType: ocispec.MediaTypeImageManifest, Digest: dg, Size: 42, Annotations: map[string]string{"k": "v"}},
		})
	})
	t.Run("image", func(t *testing.T) {
		roundTrips(t, ImageToProto, ImageFromProto, map[string]meta.Image{
			"full": {Name: "docker.io/library/busybox:1", Labels: lbl, CreatedAt: t1, UpdatedAt: t2,
				Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: dg, Size: 7}},
		})
	})
	t.Run("container", func(t *testing.T) {
		roundTrips(t, ContainerToProto, ContainerFromProto, map[string]meta.Container{
			"full": {ID: "c1", Labels: lbl, Image: "img", Runtime: meta.Runtime{Name: "runc", Options: []byte("opts")},
				Spec: []byte(`{"ociVersion":"1.2.0"}`), Snapshotter: "overlayfs", SnapshotKey: "k", SandboxID: "sb",
				Extensions: map[string][]byte{"x": []byte("y")}, CreatedAt: t1, UpdatedAt: t2,
				Status: meta.Status{State: meta.StateExited, Pid: 7, ExitCode: 137, StartedAt: t1, FinishedAt: t2, Reason: "OOMKilled", Message: "m"}},
			"no runtime options": {ID: "c2", Runtime: meta.Runtime{Name: "runc"}},
			"paused":             {ID: "c3", Runtime: meta.Runtime{Name: "crun"}, Status: meta.Status{State: meta.StatePaused, Pid: 9}},
		})
	})
	t.Run("lease", func(t *testing.T) {
		roundTrips(t, LeaseToProto, LeaseFromProto, map[string]meta.Lease{
			"zero":       {},
			"expiring":   {ID: "l", Labels: lbl, CreatedAt: t1, ExpiresAt: t2},
			"no expiry":  {ID: "l", CreatedAt: t1},
			"only label": {ID: "l", Labels: map[string]string{"k": ""}},
		})
	})
	t.Run("resource", func(t *testing.T) {
		roundTrips(t, ResourceToProto, ResourceFromProto, map[string]meta.Resource{
			"zero": {},
			"blob": {ID: dg.String(), Type: "content"},
		})
	})
	t.Run("snapshot info", func(t *testing.T) {
		cases := map[string]snapshot.Info{"zero": {}}
		for _, k := range []snapshot.Kind{snapshot.KindView, snapshot.KindActive, snapshot.KindCommitted} {
			cases[k.String()] = snapshot.Info{Kind: k, Name: "n", Parent: "p", Labels: lbl, Created: t1, Updated: t2}
		}
		roundTrips(t, SnapshotInfoToProto, SnapshotInfoFromProto, cases)
	})
	t.Run("usage", func(t *testing.T) {
		roundTrips(t, UsageToProto, UsageFromProto, map[string]snapshot.Usage{
			"zero": {},
			"full": {Size: 1 << 33, Inodes: 15000},
		})
	})
}

func TestSliceRoundTrips(t *testing.T) {
	descs := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: dg, Size: 1},
		{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 2},
	}
	if got := DescriptorsFromProto(DescriptorsToProto(descs)); !reflect.DeepEqual(got, descs) {
		t.Errorf("descriptors: %#v", got)
	}
	if got := DescriptorsFromProto(DescriptorsToProto(nil)); got == nil || len(got) != 0 {
		t.Errorf("no descriptors: %#v, want an empty slice", got)
	}
	mounts := []snapshot.Mount{
		{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"}},
		{Type: "bind", Source: "/src", Target: "/sub", Options: []string{"rbind", "ro"}},
	}
	if got := MountsFromProto(MountsToProto(mounts)); !reflect.DeepEqual(got, mounts) {
		t.Errorf("mounts: %#v", got)
	}
}

// TestDescriptorKeepsOnlyWhatTheWireCarries documents the fields of a
// descriptor that the management API does not carry.
func TestDescriptorKeepsOnlyWhatTheWireCarries(t *testing.T) {
	in := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: dg, Size: 3,
		URLs: []string{"https://x"}, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"},
		ArtifactType: "a/b", Data: []byte("d"),
	}
	got := wire(t, in, DescriptorToProto, DescriptorFromProto)
	want := ocispec.Descriptor{MediaType: in.MediaType, Digest: in.Digest, Size: in.Size}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		kind  snapshot.Kind
		proto snapshotsapi.Kind
	}{
		{snapshot.KindUnknown, snapshotsapi.Kind_UNKNOWN},
		{snapshot.KindView, snapshotsapi.Kind_VIEW},
		{snapshot.KindActive, snapshotsapi.Kind_ACTIVE},
		{snapshot.KindCommitted, snapshotsapi.Kind_COMMITTED},
	} {
		if got := KindToProto(c.kind); got != c.proto {
			t.Errorf("KindToProto(%v) = %v, want %v", c.kind, got, c.proto)
		}
		if got := KindFromProto(c.proto); got != c.kind {
			t.Errorf("KindFromProto(%v) = %v, want %v", c.proto, got, c.kind)
		}
	}
	// A kind from a newer peer is unknown, not a panic or a wrong kind.
	if got := KindFromProto(snapshotsapi.Kind(99)); got != snapshot.KindUnknown {
		t.Errorf("KindFromProto(99) = %v", got)
	}
}

// TestZeroValuesAreNil checks that a zero time or duration is sent as no
// field at all, and that no field comes back as the zero value, so that
// "not set" survives the round trip rather than becoming 1970-01-01.
func TestZeroValuesAreNil(t *testing.T) {
	if Timestamp(time.Time{}) != nil {
		t.Error("Timestamp(zero) is not nil")
	}
	if !Time(nil).IsZero() {
		t.Error("Time(nil) is not zero")
	}
	if got := Time(timestamppb.New(t1)); !got.Equal(t1) {
		t.Errorf("Time = %v", got)
	}
	if Duration(0) != nil {
		t.Error("Duration(0) is not nil")
	}
	if DurationFromProto(nil) != 0 {
		t.Error("DurationFromProto(nil) is not 0")
	}
	for _, d := range []time.Duration{time.Nanosecond, 90 * time.Minute, -5 * time.Second} {
		if got := DurationFromProto(Duration(d)); got != d {
			t.Errorf("duration %v came back as %v", d, got)
		}
	}
	if got := DurationFromProto(durationpb.New(time.Hour)); got != time.Hour {
		t.Errorf("DurationFromProto = %v", got)
	}
}

// TestFromNilMessages checks that a message left out of a request (a
// nil pointer) converts to the zero value instead of panicking.
func TestFromNilMessages(t *testing.T) {
	if got := NamespaceFromProto((*namespacesapi.Namespace)(nil)); !reflect.DeepEqual(got, meta.Namespace{}) {
		t.Errorf("namespace: %#v", got)
	}
	if got := InfoFromProto((*contentapi.Info)(nil)); !reflect.DeepEqual(got, content.Info{}) {
		t.Errorf("info: %#v", got)
	}
	if got := StatusFromProto((*contentapi.Status)(nil)); !reflect.DeepEqual(got, content.Status{}) {
		t.Errorf("status: %#v", got)
	}
	if got := ImageFromProto((*imagesapi.Image)(nil)); !reflect.DeepEqual(got, meta.Image{}) {
		t.Errorf("image: %#v", got)
	}
	if got := ContainerFromProto((*containersapi.Container)(nil)); !reflect.DeepEqual(got, meta.Container{}) {
		t.Errorf("container: %#v", got)
	}
	if got := LeaseFromProto((*leasesapi.Lease)(nil)); !reflect.DeepEqual(got, meta.Lease{}) {
		t.Errorf("lease: %#v", got)
	}
	if got := ResourceFromProto((*leasesapi.Resource)(nil)); !reflect.DeepEqual(got, meta.Resource{}) {
		t.Errorf("resource: %#v", got)
	}
	if got := SnapshotInfoFromProto((*snapshotsapi.Info)(nil)); !reflect.DeepEqual(got, snapshot.Info{}) {
		t.Errorf("snapshot info: %#v", got)
	}
	if got := UsageFromProto((*snapshotsapi.UsageResponse)(nil)); !reflect.DeepEqual(got, snapshot.Usage{}) {
		t.Errorf("usage: %#v", got)
	}
	if got := EnvelopeFromProto((*eventsapi.Envelope)(nil)); got == nil || got.Event != nil || got.Topic != "" {
		t.Errorf("envelope: %#v", got)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	payload, err := anypb.New(&namespacesapi.Namespace{Name: "ns", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	in := &events.Envelope{Timestamp: t1, Namespace: "ns", Topic: "/namespaces/create", Event: payload}
	got := wire(t, in, EnvelopeToProto, EnvelopeFromProto)
	if !got.Timestamp.Equal(in.Timestamp) || got.Namespace != in.Namespace || got.Topic != in.Topic || !proto.Equal(got.Event, in.Event) {
		t.Errorf("envelope: got %#v, want %#v", got, in)
	}
	var ns namespacesapi.Namespace
	if err := got.Event.UnmarshalTo(&ns); err != nil || ns.GetName() != "ns" || ns.GetLabels()["k"] != "v" {
		t.Errorf("payload after the round trip: %v %v", &ns, err)
	}
}
