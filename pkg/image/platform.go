package image

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// ParsePlatform parses a platform specifier: "os/arch[/variant]", or just
// "os" or "arch" when the part is a known one (the other part is the
// host's). The result is normalised (see NormalizePlatform). Errors are
// InvalidArgument and name the specifier.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	for _, p := range parts {
		if !validPlatformPart(p) {
			return ocispec.Platform{}, fmt.Errorf("platform %q: part %q is not valid: %w", s, p, errdefs.ErrInvalidArgument)
		}
	}
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		def := DefaultPlatform()
		switch part := strings.ToLower(parts[0]); {
		case knownOS(normalizeOS(part)):
			p = ocispec.Platform{OS: part, Architecture: def.Architecture, Variant: def.Variant}
		case knownArch(part):
			p = ocispec.Platform{OS: def.OS, Architecture: part}
		default:
			return ocispec.Platform{}, fmt.Errorf("platform %q: neither a known OS nor a known architecture: %w", s, errdefs.ErrInvalidArgument)
		}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return ocispec.Platform{}, fmt.Errorf("platform %q: more than os/arch/variant: %w", s, errdefs.ErrInvalidArgument)
	}
	return NormalizePlatform(p), nil
}

// FormatPlatform is the inverse of ParsePlatform: "os/arch[/variant]", or
// "unknown" for an empty platform.
func FormatPlatform(p ocispec.Platform) string {
	if p.OS == "" {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// DefaultPlatform is the platform of this process: runtime.GOOS and
// runtime.GOARCH, normalised (arm64 gets variant v8, arm gets v7). CPU
// feature levels (amd64/v2, arm64/v8.2) are not detected.
func DefaultPlatform() ocispec.Platform {
	return NormalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// NormalizePlatform returns p in its canonical form: lower case, aliases
// resolved ("x86_64" → amd64, "aarch64" → arm64, "armhf" → arm/v7,
// "macos" → darwin), variants in "vN" form, arm64 without a variant is
// v8, arm without a variant is v7, amd64/v1 is plain amd64.
// OSVersion and OSFeatures are kept as they are.
func NormalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = normalizeOS(strings.ToLower(p.OS))
	p.Architecture, p.Variant = normalizeArch(strings.ToLower(p.Architecture), strings.ToLower(p.Variant))
	return p
}

func normalizeOS(os string) string {
	if os == "macos" {
		return "darwin"
	}
	return os
}

func normalizeArch(arch, variant string) (string, string) {
	switch arch {
	case "i386", "i686", "x86":
		return "386", ""
	case "x86_64", "x86-64", "amd64":
		if variant == "v1" || variant == "1" {
			variant = ""
		}
		return "amd64", vPrefix(variant)
	case "aarch64", "arm64":
		switch variant {
		case "", "8", "v8", "v8.0":
			variant = "v8"
		}
		return "arm64", vPrefix(variant)
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		if variant == "" {
			variant = "v7"
		}
		return "arm", vPrefix(variant)
	}
	return arch, variant
}

// vPrefix turns "7" into "v7"; other forms are kept.
func vPrefix(variant string) string {
	if variant != "" && variant[0] >= '0' && variant[0] <= '9' {
		return "v" + variant
	}
	return variant
}

func validPlatformPart(p string) bool {
	if p == "" {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func knownOS(os string) bool {
	switch os {
	case "aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
		"netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows":
		return true
	}
	return false
}

func knownArch(arch string) bool {
	a, _ := normalizeArch(arch, "")
	switch a {
	case "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
		"ppc64", "ppc64le", "riscv64", "s390x", "wasm":
		return true
	}
	return false
}

// Matcher selects platforms and orders them best first.
type Matcher interface {
	// Match reports whether a manifest for p can run here.
	Match(p ocispec.Platform) bool
	// Less reports whether a is preferred to b. Matching platforms come
	// before those that do not match.
	Less(a, b ocispec.Platform) bool
	// String names the platforms matched, for error messages.
	String() string
}

// Only matches p and the platforms p can also run, best first:
// amd64/vN also runs amd64/v(N-1)…, amd64 and 386; arm/vN runs arm/v(N-1)
// down to v5; arm64/v8.N runs lower v8 levels and arm/v8 down to v5;
// arm64/v9.N runs the v9 levels below it and v8 up to v8.(N+5).
func Only(p ocispec.Platform) Matcher {
	return ordered{platforms: compatible(NormalizePlatform(p)), name: FormatPlatform(NormalizePlatform(p))}
}

// Ordered matches exactly the platforms given (normalised), preferring
// them in the order given.
func Ordered(ps ...ocispec.Platform) Matcher {
	o := ordered{}
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		o.platforms = append(o.platforms, NormalizePlatform(p))
		names = append(names, FormatPlatform(NormalizePlatform(p)))
	}
	o.name = strings.Join(names, ",")
	return o
}

// AllPlatforms matches every platform with no preference.
func AllPlatforms() Matcher { return all{} }

type ordered struct {
	platforms []ocispec.Platform // normalised, best first
	name      string
}

// rank is the position of p's first match in the list, len if none.
func (o ordered) rank(p ocispec.Platform) int {
	p = NormalizePlatform(p)
	for i, q := range o.platforms {
		if p.OS == q.OS && p.Architecture == q.Architecture && p.Variant == q.Variant {
			return i
		}
	}
	return len(o.platforms)
}

func (o ordered) Match(p ocispec.Platform) bool { return o.rank(p) < len(o.platforms) }

func (o ordered) Less(a, b ocispec.Platform) bool { return o.rank(a) < o.rank(b) }

func (o ordered) String() string { return o.name }

type all struct{}

func (all) Match(ocispec.Platform) bool { return true }

func (all) Less(a, b ocispec.Platform) bool { return false }

func (all) String() string { return "any platform" }

// compatible lists the platforms a host of platform p runs, best first.
func compatible(p ocispec.Platform) []ocispec.Platform {
	with := func(arch, variant string) ocispec.Platform {
		q := p
		q.Architecture, q.Variant = arch, variant
		return q
	}
	out := []ocispec.Platform{p}
	switch p.Architecture {
	case "amd64":
		if n, ok := variantNumber(p.Variant); ok {
			for n--; n > 1; n-- {
				out = append(out, with("amd64", "v"+strconv.Itoa(n)))
			}
			out = append(out, with("amd64", ""))
		}
		out = append(out, with("386", ""))
	case "arm":
		if n, ok := variantNumber(p.Variant); ok {
			for n--; n >= 5; n-- {
				out = append(out, with("arm", "v"+strconv.Itoa(n)))
			}
		}
	case "arm64":
		out = append(out, arm64Levels(p.Variant)...)
		for i := range out {
			out[i] = with("arm64", out[i].Variant)
		}
		for n := 8; n >= 5; n-- {
			out = append(out, with("arm", "v"+strconv.Itoa(n)))
		}
	}
	return out
}

// arm64Levels lists the arm64 variants below variant ("v8.2" → v8.1,
// v8; "v9.1" → v9, v8.6 … v8), as platforms with only Variant set.
func arm64Levels(variant string) []ocispec.Platform {
	major, minor, ok := strings.Cut(strings.TrimPrefix(variant, "v"), ".")
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(minor)
	if !ok {
		mnr, err2 = 0, nil
	}
	if err1 != nil || err2 != nil || maj < 8 || maj > 9 {
		return nil
	}
	var out []ocispec.Platform
	level := func(maj, mnr int) ocispec.Platform {
		if mnr == 0 {
			return ocispec.Platform{Variant: "v" + strconv.Itoa(maj)}
		}
		return ocispec.Platform{Variant: "v" + strconv.Itoa(maj) + "." + strconv.Itoa(mnr)}
	}
	for m := mnr - 1; m >= 0; m-- {
		out = append(out, level(maj, m))
	}
	if maj == 9 {
		for m := min(mnr+5, 9); m >= 0; m-- {
			out = append(out, level(8, m))
		}
	}
	return out
}

func variantNumber(v string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	return n, err == nil
}
