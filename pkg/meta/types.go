package meta

import (
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a name that points at a target descriptor (an index or a
// manifest) in content.
type Image struct {
	Name   string
	Labels map[string]string
	Target ocispec.Descriptor
	// ConfigDigest is the digest of the config of the platform the image
	// was pulled for: the image ID of the CRI. Images can be looked up by
	// it (ImageStore.ListByConfig). Empty when unknown.
	ConfigDigest digest.Digest
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Runtime names the runtime of a container or sandbox and its options
// (opaque bytes: a JSON or protobuf blob owned by pkg/task).
type Runtime struct {
	Name    string
	Options []byte
}

// Container is pure metadata: nothing here runs. The running process is a
// task, owned by pkg/task.
type Container struct {
	ID          string
	Labels      map[string]string
	Image       string
	Runtime     Runtime
	Spec        []byte // runtime-spec JSON
	Snapshotter string
	SnapshotKey string
	SandboxID   string
	Extensions  map[string][]byte
	// Status is the last known status of the container's task, written
	// by SetStatus only.
	Status    Status
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Sandbox is the metadata of a pod sandbox.
type Sandbox struct {
	ID         string
	Labels     map[string]string
	Runtime    Runtime
	Spec       []byte
	Extensions map[string][]byte
	// Status is the last known status of the sandbox's task (its pause
	// container), written by SetStatus only.
	Status    Status
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Lease holds resources (content, ingests, snapshots) alive against GC
// until it is deleted or expires.
type Lease struct {
	ID        string
	Labels    map[string]string
	CreatedAt time.Time
	// ExpiresAt is zero for a lease that never expires. It is also stored
	// as the label "cri-runtime.io/gc.expire" (RFC 3339), as in containerd.
	ExpiresAt time.Time
}

// Resource is something a lease holds. Type is "content", "ingests" or
// "snapshots/<snapshotter>"; ID is a digest, an ingest ref or a snapshot key.
type Resource struct {
	ID   string
	Type string
}

// Namespace is a namespace with its labels.
type Namespace struct {
	Name   string
	Labels map[string]string
}
