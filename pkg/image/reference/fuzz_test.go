package reference

import (
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// FuzzParseNormalizedNamed: a reference that parses is whole (domain,
// path, and a tag or a digest that validates), its parts are safe where
// they go (the domain names a hosts.toml directory, the path and object
// are URL path segments of /v2/<path>/manifests/<object>), its String is
// a fixed point of both parsers and its Familiar form normalises back to
// it. A refusal is InvalidArgument. Parse accepts only what is normalised
// already, and then agrees.
func FuzzParseNormalizedNamed(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "user/repo/sub", "docker.io/busybox", "index.docker.io/busybox",
		"localhost:5000/repo:v1", "busybox@" + testDigest, "busybox:1.36@" + testDigest,
		"[::1]:5000/repo", "127.0.0.1:5000/a/b:c", "Registry.Example.com/a/b_c__d-e--f.g:T_1.x-y",
		"..", "../x", "a/../b", "a//b", "A/b", "host:port/x", "x@sha256:abc", "x@md5:" + testDigest[7:],
		"[::1]/x", "[fe80::1%eth0]:5000/x", "x:" + strings.Repeat("t", 129), strings.Repeat("a/", 200) + "a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseNormalizedNamed(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseNormalizedNamed(%q): error of the wrong class: %v", s, err)
			}
			if _, err := Parse(s); err == nil {
				t.Fatalf("Parse(%q) accepts what ParseNormalizedNamed refuses", s)
			}
			return
		}
		checkReference(t, s, r)
		for name, parse := range map[string]func(string) (Reference, error){"ParseNormalizedNamed": ParseNormalizedNamed, "Parse": Parse} {
			again, err := parse(r.String())
			if err != nil || again != r {
				t.Fatalf("%q: %s(%q) = %+v, %v; want %+v", s, name, r.String(), again, err, r)
			}
		}
		if again, err := ParseNormalizedNamed(r.Familiar()); err != nil || again != r {
			t.Fatalf("%q: Familiar %q normalises to %+v, %v; want %+v", s, r.Familiar(), again, err, r)
		}
		if p, err := Parse(s); err == nil && (p.Tag != "" || p.Digest != "") && p != r {
			t.Fatalf("Parse(%q) = %+v, ParseNormalizedNamed = %+v", s, p, r)
		}
	})
}

func checkReference(t *testing.T, s string, r Reference) {
	t.Helper()
	if r.Domain == "" || r.Path == "" || (r.Tag == "" && r.Digest == "") {
		t.Fatalf("%q: incomplete %+v", s, r)
	}
	if r.Digest != "" {
		if err := r.Digest.Validate(); err != nil {
			t.Fatalf("%q: digest %q: %v", s, r.Digest, err)
		}
	}
	if r.Domain == "." || r.Domain == ".." || strings.ContainsAny(r.Domain, "/\\\x00 ") {
		t.Fatalf("%q: domain %q is not one directory name", s, r.Domain)
	}
	for _, c := range strings.Split(r.Path, "/") {
		if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "?#%\\\x00 ") {
			t.Fatalf("%q: path %q has component %q", s, r.Path, c)
		}
	}
	if o := r.Object(); o == "" || strings.ContainsAny(o, "/?#%\\\x00 ") {
		t.Fatalf("%q: object %q is not one URL path segment", s, o)
	}
}
