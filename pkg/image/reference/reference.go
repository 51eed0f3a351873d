// Package reference parses and normalises image references in the Docker
// form ("busybox", "user/repo:tag", "host:5000/repo@sha256:...") into a
// Reference with the domain, repository path, tag and digest apart.
//
// Normalisation follows the Docker rules: a reference without a domain is
// on docker.io, a single-component path on docker.io lives under
// "library/", and a reference with neither tag nor digest gets "latest".
// Familiar gives the short form back for display.
//
// The grammar is the one of the distribution project, written here so that
// the leaves of cri-runtime do not depend on it. This package imports only
// errdefs and go-digest.
package reference

import (
	"fmt"
	"strings"

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

	// legacyDefaultDomain is an alias of DefaultDomain.
	legacyDefaultDomain = "index.docker.io"
	// maxNameLength bounds domain + "/" + path, as in distribution.
	maxNameLength = 255
	// maxTagLength bounds a tag, as in distribution.
	maxTagLength = 128
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
	s := r.Name()
	if r.Domain == DefaultDomain {
		s = r.Path
		if rem, ok := strings.CutPrefix(r.Path, OfficialRepoPrefix); ok && !strings.Contains(rem, "/") {
			s = rem
		}
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// ParseNormalizedNamed parses s, which may be in the familiar form, and
// returns the normalised reference: domain defaulted to docker.io,
// "library/" added to single-component docker.io paths, tag defaulted to
// "latest" when there is neither tag nor digest. Errors are
// InvalidArgument and name the reference.
func ParseNormalizedNamed(s string) (Reference, error) {
	if isIdentifier(s) {
		return Reference{}, invalid(s, "a 64-character hexadecimal string is an image ID, not a reference")
	}
	domain, rest := splitDomain(s)
	r, err := parse(s, domain, rest)
	if err != nil {
		return Reference{}, err
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

// Parse parses a reference that must already be normalised (it has a
// domain): "docker.io/library/busybox:latest". No tag is added.
func Parse(s string) (Reference, error) {
	i := strings.IndexByte(s, '/')
	if i < 0 || !looksLikeDomain(s[:i]) {
		return Reference{}, invalid(s, "not normalised: no domain")
	}
	return parse(s, s[:i], s[i+1:])
}

// splitDomain splits the familiar form into domain and remainder, applying
// the Docker defaults.
func splitDomain(s string) (domain, rest string) {
	i := strings.IndexByte(s, '/')
	if i < 0 || !looksLikeDomain(s[:i]) {
		domain, rest = DefaultDomain, s
	} else {
		domain, rest = s[:i], s[i+1:]
	}
	if domain == legacyDefaultDomain {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.ContainsRune(pathPart(rest), '/') {
		rest = OfficialRepoPrefix + rest
	}
	return domain, rest
}

// looksLikeDomain reports whether the first component of a name is a
// domain rather than a path component: it has a dot or a port, is
// "localhost", or has upper-case letters (never valid in a path).
func looksLikeDomain(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost" || strings.ToLower(s) != s
}

// pathPart strips the tag and digest off the remainder of a reference.
func pathPart(rest string) string {
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// parse checks and splits "path[:tag][@digest]" under domain.
func parse(s, domain, rest string) (Reference, error) {
	r := Reference{Domain: domain}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return Reference{}, invalid(s, "digest: "+err.Error())
		}
		r.Digest = d
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !validTag(r.Tag) {
			return Reference{}, invalid(s, fmt.Sprintf("tag %q is not valid", r.Tag))
		}
	}
	r.Path = rest
	if err := checkDomain(domain); err != nil {
		return Reference{}, invalid(s, err.Error())
	}
	if err := checkPath(rest); err != nil {
		return Reference{}, invalid(s, err.Error())
	}
	if len(r.Name()) > maxNameLength {
		return Reference{}, invalid(s, fmt.Sprintf("name is longer than %d characters", maxNameLength))
	}
	return r, nil
}

func invalid(s, why string) error {
	return fmt.Errorf("reference %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
}
