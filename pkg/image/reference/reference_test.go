package reference

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

const testDigest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

func TestParseNormalizedNamed(t *testing.T) {
	for _, tc := range []struct {
		in, want, familiar, object string
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"user/repo", "docker.io/user/repo:latest", "user/repo:latest", "latest"},
		{"user/repo/sub", "docker.io/user/repo/sub:latest", "user/repo/sub:latest", "latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest", "latest"},
		{"localhost/repo", "localhost/repo:latest", "localhost/repo:latest", "latest"},
		{"localhost:5000/repo:v1", "localhost:5000/repo:v1", "localhost:5000/repo:v1", "v1"},
		{"host:5000/repo@" + testDigest, "host:5000/repo@" + testDigest, "host:5000/repo@" + testDigest, testDigest},
		{"busybox@" + testDigest, "docker.io/library/busybox@" + testDigest, "busybox@" + testDigest, testDigest},
		{"busybox:1.36@" + testDigest, "docker.io/library/busybox:1.36@" + testDigest, "busybox:1.36@" + testDigest, testDigest},
		{"registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10", "3.10"},
		{"Registry.Example.com/a/b_c__d-e--f.g:T_1.x-y", "Registry.Example.com/a/b_c__d-e--f.g:T_1.x-y", "Registry.Example.com/a/b_c__d-e--f.g:T_1.x-y", "T_1.x-y"},
		{"[::1]:5000/repo", "[::1]:5000/repo:latest", "[::1]:5000/repo:latest", "latest"},
		{"127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c", "c"},
	} {
		r, err := ParseNormalizedNamed(tc.in)
		if err != nil {
			t.Errorf("ParseNormalizedNamed(%q): %v", tc.in, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("ParseNormalizedNamed(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := r.Familiar(); got != tc.familiar {
			t.Errorf("ParseNormalizedNamed(%q).Familiar() = %q, want %q", tc.in, got, tc.familiar)
		}
		if got := r.Object(); got != tc.object {
			t.Errorf("ParseNormalizedNamed(%q).Object() = %q, want %q", tc.in, got, tc.object)
		}
		// The normalised form is a fixed point of both parsers.
		for name, parse := range map[string]func(string) (Reference, error){"ParseNormalizedNamed": ParseNormalizedNamed, "Parse": Parse} {
			again, err := parse(tc.want)
			if err != nil || again != r {
				t.Errorf("%s(%q) = %+v, %v; want %+v", name, tc.want, again, err, r)
			}
		}
	}
}

func TestParseNormalizedNamedInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"Busybox",
		"busybox:",
		"busybox:-tag",
		"busybox:" + strings.Repeat("t", 129),
		"busybox@sha256:abc",
		"busybox@md5:" + strings.Repeat("0", 32),
		"a//b",
		"repo/",
		"/repo",
		"-repo",
		"re..po",
		"re___po",
		"host:port/repo",
		"host:/repo",
		"-host.io/repo",
		"[::1/repo",
		"[zz::1]:5000/repo",
		"localhost:5000/Repo",
		"a/" + strings.Repeat("b", 255),
		strings.Repeat("ab", 32),
	} {
		r, err := ParseNormalizedNamed(in)
		if err == nil {
			t.Errorf("ParseNormalizedNamed(%q) = %q, want an error", in, r)
			continue
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseNormalizedNamed(%q): %v is not InvalidArgument", in, err)
		}
		if !strings.Contains(err.Error(), "reference "+strconv.Quote(in)) {
			t.Errorf("ParseNormalizedNamed(%q): %q does not name the reference", in, err)
		}
	}
}

func TestParseRequiresDomain(t *testing.T) {
	for _, in := range []string{"busybox", "user/repo:tag", "docker.io/busybox"} {
		if _, err := Parse(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) = %v, want InvalidArgument", in, err)
		}
	}
	r, err := Parse("docker.io/library/busybox")
	if err != nil || r.Tag != "" || r.Object() != "" {
		t.Errorf("Parse without tag = %+v, %v; want no tag added", r, err)
	}
}
