package spec

import (
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestCapabilities(t *testing.T) {
	defaults := []string{"CAP_CHOWN", "CAP_KILL"}
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}
	for _, tc := range []struct {
		name              string
		add, drop, amb    []string
		want, wantAmbient []string
		err               error
	}{
		{name: "defaults", want: defaults},
		{name: "add with and without CAP_", add: []string{"NET_ADMIN", "CAP_SYS_ADMIN"}, want: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}},
		{name: "lower case", add: []string{"net_admin"}, want: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}},
		{name: "add twice once", add: []string{"KILL", "CAP_KILL"}, want: defaults},
		{name: "drop", drop: []string{"CHOWN"}, want: []string{"CAP_KILL"}},
		{name: "add ALL drop one", add: []string{"ALL"}, drop: []string{"CHOWN"}, want: []string{"CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}},
		{name: "drop ALL add one", add: []string{"NET_ADMIN"}, drop: []string{"ALL"}, want: []string{"CAP_NET_ADMIN"}},
		{name: "drop ALL", drop: []string{"all"}, want: []string{}},
		{name: "add ALL", add: []string{"ALL"}, want: all},
		{name: "drop wins over add", add: []string{"NET_ADMIN"}, drop: []string{"NET_ADMIN"}, want: defaults},
		{name: "ambient", amb: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}, wantAmbient: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "unknown add", add: []string{"FLY"}, err: errdefs.ErrInvalidArgument},
		{name: "unknown drop", drop: []string{"CAP_"}, err: errdefs.ErrInvalidArgument},
		{name: "unknown ambient", amb: []string{"ALL"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := capabilities(&runtime.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop, AddAmbientCapabilities: tc.amb}, defaults, all)
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			for _, set := range [][]string{c.Bounding, c.Permitted, c.Effective} {
				if !slices.Equal(set, tc.want) {
					t.Fatalf("caps %+v, want %q", c, tc.want)
				}
			}
			if !slices.Equal(c.Ambient, tc.wantAmbient) || !slices.Equal(c.Inheritable, tc.wantAmbient) {
				t.Fatalf("ambient %q inheritable %q, want %q", c.Ambient, c.Inheritable, tc.wantAmbient)
			}
		})
	}
}

func TestCapabilitiesUpTo(t *testing.T) {
	if got := CapabilitiesUpTo(40); !slices.Equal(got, AllCapabilities()) || len(got) != 41 {
		t.Fatalf("up to 40: %d caps", len(got))
	}
	if got := CapabilitiesUpTo(37); got[len(got)-1] != "CAP_AUDIT_READ" {
		t.Fatalf("up to 37 ends with %q", got[len(got)-1])
	}
	if got := CapabilitiesUpTo(63); len(got) != 41 {
		t.Fatalf("up to 63: %d caps", len(got))
	}
	for _, c := range DefaultCapabilities() {
		if !slices.Contains(AllCapabilities(), c) {
			t.Errorf("default %q unknown", c)
		}
	}
}
