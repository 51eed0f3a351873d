package convert

import (
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	imagesapi "github.com/cri-runtime/cri-runtime/api/services/images/v1"
)

// DescriptorsToProto converts descriptors.
func DescriptorsToProto(ds []ocispec.Descriptor) []*imagesapi.Descriptor {
	out := make([]*imagesapi.Descriptor, 0, len(ds))
	for _, d := range ds {
		out = append(out, DescriptorToProto(d))
	}
	return out
}

// DescriptorsFromProto converts descriptors.
func DescriptorsFromProto(ds []*imagesapi.Descriptor) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(ds))
	for _, d := range ds {
		out = append(out, DescriptorFromProto(d))
	}
	return out
}

// DurationFromProto converts d; nil becomes zero.
func DurationFromProto(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}
