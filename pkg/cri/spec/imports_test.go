package spec

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayPure: the package imports errdefs, the OCI and CRI
// types, the moby seccomp profile and x/sys for the host helpers; nothing
// of meta, task, image or any other part of the daemon. hack/depcheck
// checks the pkg/cri family; this holds spec to less.
func TestImportsStayPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/cri-runtime/cri-runtime/pkg/errdefs",
		"github.com/opencontainers/runtime-spec/",
		"github.com/opencontainers/image-spec/",
		"k8s.io/cri-api/pkg/apis/runtime/v1",
		"github.com/moby/profiles/seccomp",
		"golang.org/x/sys/unix",
	}
	n := 0
	for imp := range strings.FieldsSeq(string(out)) {
		n++
		if !strings.Contains(strings.Split(imp, "/")[0], ".") {
			if imp == "net" || strings.HasPrefix(imp, "net/") || imp == "os/exec" {
				t.Errorf("imports %s", imp)
			}
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || imp == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a))
		}
		if !ok {
			t.Errorf("imports %s, outside what spec may use", imp)
		}
	}
	if n < 5 {
		t.Fatalf("go list listed %d imports", n)
	}
}
