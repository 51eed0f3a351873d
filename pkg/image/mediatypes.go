package image

import ocispec "github.com/opencontainers/image-spec/specs-go/v1"

// Media types of the Docker image manifest schema 2. The OCI ones are in
// image-spec (ocispec.MediaTypeImage*); the deprecated OCI
// non-distributable layer types are spelled out here.
const (
	MediaTypeDockerSchema2Manifest         = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerSchema2ManifestList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema2Config           = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerSchema2Layer            = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerSchema2LayerGzip        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerSchema2LayerZstd        = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerSchema2LayerForeign     = "application/vnd.docker.image.rootfs.foreign.diff.tar"
	MediaTypeDockerSchema2LayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

	// Schema 1 is recognised only to be refused (NotImplemented).
	MediaTypeDockerSchema1Manifest         = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerSchema1ManifestUnsigned = "application/vnd.docker.distribution.manifest.v1+json"

	MediaTypeImageLayerNonDistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeImageLayerNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeImageLayerNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// Compression is the compression of a layer blob.
type Compression uint8

// The layer compressions.
const (
	CompressionNone Compression = iota
	CompressionGzip
	CompressionZstd
)

func (c Compression) String() string {
	switch c {
	case CompressionGzip:
		return "gzip"
	case CompressionZstd:
		return "zstd"
	}
	return "none"
}

// ManifestMediaTypes are the types a resolver accepts for the target of a
// reference, best first: what goes into the Accept header.
func ManifestMediaTypes() []string {
	return []string{
		ocispec.MediaTypeImageIndex,
		MediaTypeDockerSchema2ManifestList,
		ocispec.MediaTypeImageManifest,
		MediaTypeDockerSchema2Manifest,
	}
}

// IsManifest reports whether mt is an image manifest (OCI or Docker).
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerSchema2Manifest
}

// IsIndex reports whether mt is an index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerSchema2ManifestList
}

// IsSchema1 reports whether mt is the unsupported Docker schema 1.
func IsSchema1(mt string) bool {
	return mt == MediaTypeDockerSchema1Manifest || mt == MediaTypeDockerSchema1ManifestUnsigned
}

// IsConfig reports whether mt is an image config.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerSchema2Config
}

// IsLayer reports whether mt is a layer, distributable or not.
func IsLayer(mt string) bool {
	_, ok := LayerCompression(mt)
	return ok
}

// IsForeignLayer reports whether mt is a layer that registries may refuse
// to serve (Docker foreign layers, OCI non-distributable layers): such a
// blob is fetched from the descriptor's URLs, if anywhere.
func IsForeignLayer(mt string) bool {
	switch mt {
	case MediaTypeDockerSchema2LayerForeign, MediaTypeDockerSchema2LayerForeignGzip,
		MediaTypeImageLayerNonDistributable, MediaTypeImageLayerNonDistributableGzip,
		MediaTypeImageLayerNonDistributableZstd:
		return true
	}
	return false
}

// LayerCompression returns the compression of a layer media type; ok is
// false if mt is not a layer type this runtime knows how to apply.
func LayerCompression(mt string) (c Compression, ok bool) {
	switch mt {
	case ocispec.MediaTypeImageLayer, MediaTypeDockerSchema2Layer,
		MediaTypeDockerSchema2LayerForeign, MediaTypeImageLayerNonDistributable:
		return CompressionNone, true
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerSchema2LayerGzip,
		MediaTypeDockerSchema2LayerForeignGzip, MediaTypeImageLayerNonDistributableGzip:
		return CompressionGzip, true
	case ocispec.MediaTypeImageLayerZstd, MediaTypeDockerSchema2LayerZstd,
		MediaTypeImageLayerNonDistributableZstd:
		return CompressionZstd, true
	}
	return CompressionNone, false
}
