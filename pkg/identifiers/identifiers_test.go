package identifiers

import (
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestValidate(t *testing.T) {
	good := []string{"a", "k8s.io", "default", "my_ns-1", "A9", strings.Repeat("a", MaxLength)}
	for _, s := range good {
		if err := Validate(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := map[string]string{
		"":                               "empty",
		"-a":                             "start",
		"a-":                             "end",
		".a":                             "start",
		"a b":                            "' '",
		"a/b":                            "'/'",
		"ä":                              "start",
		strings.Repeat("a", MaxLength+1): "longer than 76",
	}
	for s, want := range bad {
		err := Validate(s)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: want InvalidArgument, got %v", s, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: message %q does not say %q", s, err, want)
		}
	}
}
