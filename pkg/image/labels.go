package image

import (
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LabelGCRefContentPrefix starts the labels by which a blob holds other
// blobs alive against GC. pkg/meta's collector follows every label with
// this prefix whose value is a digest; the suffixes name the kind of child:
//
//	<prefix>.m.<i>    the i-th manifest (or nested index) of an index
//	<prefix>.config   the config of a manifest
//	<prefix>.l.<i>    the i-th layer of a manifest
//	<prefix>.<i>      the i-th child of another kind
//
// i counts children of the same kind, from 0.
const LabelGCRefContentPrefix = "cri-runtime.io/gc.ref.content"

// ChildrenLabels returns the GC reference labels that a parent blob
// carries for children.
func ChildrenLabels(children []ocispec.Descriptor) map[string]string {
	labels := make(map[string]string, len(children))
	var manifests, layers, others int
	for _, c := range children {
		var key string
		switch mt := c.MediaType; {
		case IsManifest(mt) || IsIndex(mt):
			key = LabelGCRefContentPrefix + ".m." + strconv.Itoa(manifests)
			manifests++
		case IsConfig(mt):
			key = LabelGCRefContentPrefix + ".config"
		case IsLayer(mt):
			key = LabelGCRefContentPrefix + ".l." + strconv.Itoa(layers)
			layers++
		default:
			key = LabelGCRefContentPrefix + "." + strconv.Itoa(others)
			others++
		}
		labels[key] = c.Digest.String()
	}
	return labels
}
