// Package depcheck fails when an import edge between the project's packages
// points up the layering of ARCHITECTURE.md.
//
// The table below is the whole rule: a package may import the project
// packages listed for its family (and its own family's sub-packages).
// A family is the longest prefix in the table that names the package.
package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/cri-runtime/cri-runtime/"

// leaves may be imported by everything; they import only other leaves
// listed in their own entry.
var leaves = []string{
	"pkg/errdefs", "pkg/identifiers", "pkg/namespaces", "pkg/leases",
	"pkg/filters", "pkg/events", "api/events", "pkg/mount",
	"internal/testenv", // test helpers, standard library only
	"pkg/labels", "pkg/duration",
}

// allowed maps a package family to the families it may import beyond
// itself. "leaves" expands to the list above.
var allowed = map[string][]string{
	"pkg/errdefs":     {},
	"pkg/identifiers": {"pkg/errdefs"},
	"pkg/namespaces":  {"pkg/errdefs", "pkg/identifiers"},
	"pkg/leases":      {},
	"pkg/filters":     {"pkg/errdefs"},
	"pkg/events":      {"pkg/errdefs", "pkg/identifiers", "pkg/namespaces", "pkg/filters", "api/events"},
	"pkg/mount":       {"pkg/errdefs"},
	"pkg/labels":      {},
	"pkg/duration":    {"pkg/errdefs"},
	// The gRPC edge of the leaves: errdefs classes and the namespace and
	// lease headers, for the server's and the client's interceptors.
	"pkg/rpc":              {"leaves"},
	"api":                  {},
	"pkg/content":          {"leaves"},
	"pkg/snapshot":         {"leaves"},
	"pkg/archive":          {"leaves"},
	"pkg/meta/gc":          {"leaves"},
	"pkg/meta":             {"leaves", "pkg/content", "pkg/snapshot"},
	"pkg/image":            {"leaves", "pkg/meta", "pkg/content", "pkg/snapshot", "pkg/archive"},
	"pkg/task":             {"leaves", "api/task"},
	"cmd/cri-runtime-shim": {"leaves", "pkg/task", "api/task"},
	"pkg/cni":              {"leaves"},
	"pkg/sandbox":          {"leaves", "pkg/meta", "pkg/task", "pkg/cni", "pkg/image", "pkg/content", "pkg/snapshot"},
	// The pure translation of configs into runtime-specs.
	"pkg/cri/spec": {"pkg/errdefs"},
	"pkg/cri":      {"leaves", "pkg/sandbox", "pkg/image", "pkg/task", "pkg/meta", "pkg/content", "pkg/snapshot", "pkg/cni"},
	"pkg/client":   {"leaves", "pkg/rpc", "api", "pkg/content", "pkg/snapshot", "pkg/meta", "pkg/server/convert"},
	// The wire conversions are shared by both ends of the management API so
	// the two cannot drift; they import nothing of the server itself.
	"pkg/server/convert": {"leaves", "api", "pkg/content", "pkg/snapshot", "pkg/meta"},
	"pkg/server":         {"*"},
	"cmd":                {"*"},
	"test":               {"*"},
	"hack":               {"*"},
	// Test helpers; imported by tests only.
	"internal/testenv": {},
	// The built daemon as a node runs it, for the end-to-end suites.
	"internal/crinode": {"*"},
}

// small lists the packages that the shim may link, and what none of them
// may link, directly or through any dependency (go list -deps): the shim
// runs once per pod and must stay small (ARCHITECTURE.md, pkg/task). The
// daemon side of tasks (pkg/task itself) talks to the shim and may use
// more; what the shim binary links is checked from its own main package.
var small = struct {
	pkgs      []string
	forbidden []string
}{
	pkgs: []string{
		"pkg/errdefs", "pkg/identifiers", "pkg/namespaces", "pkg/leases",
		"pkg/filters", "pkg/mount", "pkg/task/shim", "pkg/task/shimapi", "pkg/task/cgroups",
		"cmd/cri-runtime-shim",
	},
	forbidden: []string{
		"go.etcd.io/bbolt", "github.com/prometheus/", "google.golang.org/grpc", "google.golang.org/protobuf",
		"oras.land/", "github.com/containernetworking/", "k8s.io/klog",
		module + "pkg/meta", module + "pkg/image", module + "pkg/content",
		module + "pkg/snapshot", module + "pkg/archive", module + "pkg/server",
		module + "pkg/client", module + "pkg/cri", module + "pkg/cni",
		// crypto/sha256 alone links the FIPS module: 75 KiB of private
		// memory in every shim (see shimapi.SocketPath).
		"crypto/",
	},
}

// forbiddenExternal lists third-party imports a family must not import
// directly.
var forbiddenExternal = map[string][]string{
	"pkg/task": {"go.etcd.io/bbolt", "github.com/prometheus/", "github.com/containernetworking/", "google.golang.org/grpc"},
}

type pkgInfo struct {
	ImportPath string
	Imports    []string
}

func family(rel string) string {
	best := ""
	for f := range allowed {
		if (rel == f || strings.HasPrefix(rel, f+"/")) && len(f) > len(best) {
			best = f
		}
	}
	return best
}

func permitted(fam, dep string) bool {
	depFam := family(dep)
	if depFam == fam || strings.HasPrefix(dep, fam+"/") {
		return true
	}
	for _, a := range allowed[fam] {
		switch {
		case a == "*":
			return true
		case a == "leaves":
			for _, l := range leaves {
				if dep == l || strings.HasPrefix(dep, l+"/") {
					return true
				}
			}
		case dep == a || strings.HasPrefix(dep, a+"/"):
			return true
		}
	}
	return false
}

func TestImportsPointDown(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", "../../...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var bad []string
	n := 0
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		rel := strings.TrimPrefix(p.ImportPath, module)
		fam := family(rel)
		if fam == "" {
			bad = append(bad, rel+": not in the layering table of hack/depcheck")
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				dep := strings.TrimPrefix(imp, module)
				if !permitted(fam, dep) {
					bad = append(bad, rel+" imports "+dep+" (up or across the layering)")
				}
				continue
			}
			for _, f := range forbiddenExternal[fam] {
				if strings.HasPrefix(imp, f) {
					bad = append(bad, rel+" imports "+imp+" (forbidden for "+fam+")")
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found only %d packages", n)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestSmallClosure checks the whole dependency closure of the packages the
// shim may link: a leaf that imports a leaf that links gRPC is caught, not
// only a direct import.
func TestSmallClosure(t *testing.T) {
	var args []string
	for _, p := range small.pkgs {
		args = append(args, "../../"+p+"/...")
	}
	// -e: a listed package that does not exist yet (the shim before it is
	// written) is reported with an error field, not a failure.
	cmd := exec.Command("go", append([]string{"list", "-e", "-json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var roots []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error == nil && strings.HasPrefix(p.ImportPath, module) && !strings.HasSuffix(p.ImportPath, "_test") {
			roots = append(roots, p.ImportPath)
		}
	}
	if len(roots) < 6 {
		t.Fatalf("found only %d of the small packages: %v", len(roots), roots)
	}
	for _, root := range roots {
		deps, err := exec.Command("go", "list", "-deps", root).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", root, err)
		}
		for _, dep := range strings.Fields(string(deps)) {
			for _, f := range small.forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s links %s (forbidden in what the shim links)", strings.TrimPrefix(root, module), dep)
				}
			}
		}
	}
}

func TestRuleCatchesUpwardEdge(t *testing.T) {
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"pkg/content/local", "pkg/meta", false},
		{"pkg/meta", "pkg/content", true},
		{"pkg/meta/gc", "pkg/meta", false},
		{"pkg/snapshot/overlay", "pkg/snapshot/storage", true},
		{"pkg/errdefs", "pkg/namespaces", false},
		{"pkg/task/shim", "pkg/meta", false},
		{"pkg/task/shim", "pkg/task/shimapi", true},
		{"pkg/task", "pkg/image", false},
		{"pkg/task", "pkg/events", true},
		{"pkg/image/remote", "pkg/archive", true},
		{"pkg/server", "pkg/cri", true},
		{"pkg/cri/spec", "pkg/meta", false},
		{"pkg/cri", "pkg/cri/spec", true},
		{"pkg/client", "pkg/server", false},
		{"pkg/server/convert", "pkg/server", false},
		{"pkg/namespaces", "pkg/rpc", false},
		{"pkg/server", "pkg/rpc", true},
		{"pkg/mount", "pkg/snapshot", false},
		{"pkg/snapshot", "pkg/mount", true},
	}
	for _, c := range cases {
		if got := permitted(family(c.from), c.to); got != c.ok {
			t.Errorf("%s -> %s: permitted=%v, want %v", c.from, c.to, got, c.ok)
		}
	}
}
