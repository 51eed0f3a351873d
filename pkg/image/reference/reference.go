// Package reference parses and normalises image references in the Docker
// form ("busybox", "user/repo:tag", "host:5000/repo@sha256:...") into a
// Reference with the domain, repository path, tag and digest apart.
//
// Normalisation follows the Docker rules: a reference without a domain is
// on docker.io, a single-component path on docker.io lives under
// "library/", and a reference with neither tag nor digest gets "latest".
// Familiar gives the short form back for display.
//
// The grammar and the normalisation are those of
// github.com/distribution/reference, the library the field uses; this
// package gives its result a plain struct and its errors the
// InvalidArgument class, naming the reference. It imports only errdefs,
// go-digest and that library.
package reference

import (
	"fmt"

	dref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

const (
	// DefaultDomain is the domain of references given without one.
	DefaultDomain = "docker.io"
	// DefaultTag is the tag of references given with neither tag nor digest.
	DefaultTag = "latest"
	// OfficialRepoPrefix is the path prefix of single-component names on
	// DefaultDomain.
	OfficialRepoPrefix = "library/"
)

// Reference is a parsed image reference. Domain and Path are always set;
// Tag, Digest or both may be set.
type Reference struct {
	Domain string        // "docker.io", "registry:5000", "[::1]:5000"
	Path   string        // "library/busybox"
	Tag    string        // "latest"; "" if none
	Digest digest.Digest // "" if none
}

// Name is the repository name: domain/path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised form: domain/path[:tag][@digest].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Object is what to ask the registry's manifest endpoint for: the digest
// when there is one (a digest wins over a tag), else the tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Familiar is the short form for display: "busybox:latest",
// "user/repo:tag", "host:5000/repo@sha256:...".
func (r Reference) Familiar() string {
	named, err := dref.ParseNamed(r.String())
	if err != nil {
		return r.String()
	}
	return dref.FamiliarString(named)
}

// ParseNormalizedNamed parses s, which may be in the familiar form, and
// returns the normalised reference: domain defaulted to docker.io,
// "library/" added to single-component docker.io paths, tag defaulted to
// "latest" when there is neither tag nor digest. Errors are
// InvalidArgument and name the reference.
func ParseNormalizedNamed(s string) (Reference, error) {
	named, err := dref.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, invalid(s, err)
	}
	return fromNamed(dref.TagNameOnly(named)), nil
}

// Parse parses a reference that must already be normalised:
// "docker.io/library/busybox:latest". No tag is added.
func Parse(s string) (Reference, error) {
	named, err := dref.ParseNamed(s)
	if err != nil {
		return Reference{}, invalid(s, err)
	}
	return fromNamed(named), nil
}

func fromNamed(named dref.Named) Reference {
	r := Reference{Domain: dref.Domain(named), Path: dref.Path(named)}
	if t, ok := named.(dref.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(dref.Digested); ok {
		r.Digest = d.Digest()
	}
	return r
}

func invalid(s string, err error) error {
	return fmt.Errorf("reference %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
}
