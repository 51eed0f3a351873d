package image

import (
	"runtime"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func plat(os, arch, variant string) ocispec.Platform {
	return ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
}

func TestParsePlatform(t *testing.T) {
	host := DefaultPlatform()
	for _, tc := range []struct {
		in   string
		want ocispec.Platform
		str  string
	}{
		{"linux/amd64", plat("linux", "amd64", ""), "linux/amd64"},
		{"linux/amd64/v1", plat("linux", "amd64", ""), "linux/amd64"},
		{"linux/amd64/v3", plat("linux", "amd64", "v3"), "linux/amd64/v3"},
		{"linux/x86_64", plat("linux", "amd64", ""), "linux/amd64"},
		{"Linux/AMD64", plat("linux", "amd64", ""), "linux/amd64"},
		{"linux/arm64", plat("linux", "arm64", "v8"), "linux/arm64/v8"},
		{"linux/arm64/v8", plat("linux", "arm64", "v8"), "linux/arm64/v8"},
		{"linux/arm64/8", plat("linux", "arm64", "v8"), "linux/arm64/v8"},
		{"linux/aarch64", plat("linux", "arm64", "v8"), "linux/arm64/v8"},
		{"linux/arm64/v8.2", plat("linux", "arm64", "v8.2"), "linux/arm64/v8.2"},
		{"linux/arm", plat("linux", "arm", "v7"), "linux/arm/v7"},
		{"linux/arm/6", plat("linux", "arm", "v6"), "linux/arm/v6"},
		{"linux/armhf", plat("linux", "arm", "v7"), "linux/arm/v7"},
		{"linux/armel", plat("linux", "arm", "v6"), "linux/arm/v6"},
		{"linux/i386", plat("linux", "386", ""), "linux/386"},
		{"linux/s390x", plat("linux", "s390x", ""), "linux/s390x"},
		{"macos/arm64", plat("darwin", "arm64", "v8"), "darwin/arm64/v8"},
		{"windows/amd64", plat("windows", "amd64", ""), "windows/amd64"},
		{"linux", plat("linux", host.Architecture, host.Variant), FormatPlatform(plat("linux", host.Architecture, host.Variant))},
		{"arm64", plat(host.OS, "arm64", "v8"), host.OS + "/arm64/v8"},
		{"aarch64", plat(host.OS, "arm64", "v8"), host.OS + "/arm64/v8"},
	} {
		got, err := ParsePlatform(tc.in)
		if err != nil {
			t.Errorf("ParsePlatform(%q): %v", tc.in, err)
			continue
		}
		if got.OS != tc.want.OS || got.Architecture != tc.want.Architecture || got.Variant != tc.want.Variant {
			t.Errorf("ParsePlatform(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := FormatPlatform(got); s != tc.str {
			t.Errorf("FormatPlatform(ParsePlatform(%q)) = %q, want %q", tc.in, s, tc.str)
		}
	}
	for _, in := range []string{"", "/", "linux/", "/amd64", "linux/amd64/v8/x", "plan10", "linux/amd 64", "linux/amd64/v1+x"} {
		if p, err := ParsePlatform(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParsePlatform(%q) = %+v, %v; want InvalidArgument", in, p, err)
		}
	}
}

func TestDefaultPlatform(t *testing.T) {
	p := DefaultPlatform()
	if p.OS != runtime.GOOS {
		t.Errorf("DefaultPlatform().OS = %q, want %q", p.OS, runtime.GOOS)
	}
	switch runtime.GOARCH {
	case "amd64":
		if p.Architecture != "amd64" || p.Variant != "" {
			t.Errorf("DefaultPlatform() = %+v, want amd64 without variant", p)
		}
	case "arm64":
		if p.Architecture != "arm64" || p.Variant != "v8" {
			t.Errorf("DefaultPlatform() = %+v, want arm64/v8", p)
		}
	}
	if !Only(p).Match(p) {
		t.Errorf("Only(DefaultPlatform()) does not match itself")
	}
}

func TestOnlyMatch(t *testing.T) {
	for _, tc := range []struct {
		host      string
		match     []string
		mismatch  []string
		bestFirst []string // a permutation sorted by Less must give this order
	}{
		{
			host:      "linux/amd64",
			match:     []string{"linux/amd64", "linux/amd64/v1", "linux/x86_64", "linux/386"},
			mismatch:  []string{"linux/amd64/v2", "linux/arm64", "windows/amd64", "linux/arm/v7"},
			bestFirst: []string{"linux/amd64", "linux/386", "linux/arm64"},
		},
		{
			host:      "linux/amd64/v3",
			match:     []string{"linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"},
			mismatch:  []string{"linux/amd64/v4"},
			bestFirst: []string{"linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"},
		},
		{
			host:      "linux/arm64",
			match:     []string{"linux/arm64", "linux/arm64/v8", "linux/aarch64", "linux/arm/v8", "linux/arm/v7", "linux/arm", "linux/arm/v5"},
			mismatch:  []string{"linux/amd64", "linux/arm64/v8.1", "linux/arm64/v9", "linux/arm/v4", "darwin/arm64"},
			bestFirst: []string{"linux/arm64/v8", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/amd64"},
		},
		{
			host:      "linux/arm64/v8.2",
			match:     []string{"linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v7"},
			mismatch:  []string{"linux/arm64/v8.3", "linux/arm64/v9"},
			bestFirst: []string{"linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8"},
		},
		{
			host:      "linux/arm64/v9.1",
			match:     []string{"linux/arm64/v9", "linux/arm64/v8.6", "linux/arm64"},
			mismatch:  []string{"linux/arm64/v8.7", "linux/arm64/v9.2"},
			bestFirst: []string{"linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6", "linux/arm64"},
		},
		{
			host:      "linux/arm/v6",
			match:     []string{"linux/arm/v6", "linux/arm/v5", "linux/armel"},
			mismatch:  []string{"linux/arm/v7", "linux/arm", "linux/arm64"},
			bestFirst: []string{"linux/arm/v6", "linux/arm/v5"},
		},
	} {
		m := Only(mustParse(t, tc.host))
		for _, s := range tc.match {
			if !m.Match(mustParse(t, s)) {
				t.Errorf("Only(%s).Match(%s) = false, want true", tc.host, s)
			}
		}
		for _, s := range tc.mismatch {
			if m.Match(mustParse(t, s)) {
				t.Errorf("Only(%s).Match(%s) = true, want false", tc.host, s)
			}
		}
		got := slices.Clone(tc.bestFirst)
		slices.Reverse(got)
		slices.SortStableFunc(got, func(a, b string) int {
			switch {
			case m.Less(mustParse(t, a), mustParse(t, b)):
				return -1
			case m.Less(mustParse(t, b), mustParse(t, a)):
				return 1
			}
			return 0
		})
		if !slices.Equal(got, tc.bestFirst) {
			t.Errorf("Only(%s) orders %v, want %v", tc.host, got, tc.bestFirst)
		}
	}
}

func TestOrderedAndAll(t *testing.T) {
	m := Ordered(mustParse(t, "linux/arm64"), mustParse(t, "linux/amd64"))
	if !m.Match(mustParse(t, "linux/amd64")) || m.Match(mustParse(t, "linux/386")) {
		t.Errorf("Ordered matches sub-platforms or misses listed ones")
	}
	if !m.Less(mustParse(t, "linux/arm64"), mustParse(t, "linux/amd64")) || m.Less(mustParse(t, "linux/amd64"), mustParse(t, "linux/arm64")) {
		t.Errorf("Ordered does not prefer the first platform")
	}
	if m.String() != "linux/arm64/v8,linux/amd64" {
		t.Errorf("Ordered.String() = %q", m.String())
	}
	a := AllPlatforms()
	if !a.Match(plat("plan9", "mips", "")) || a.Less(plat("linux", "amd64", ""), plat("plan9", "mips", "")) {
		t.Errorf("AllPlatforms does not match all without preference")
	}
}

func mustParse(t *testing.T, s string) ocispec.Platform {
	t.Helper()
	p, err := ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
