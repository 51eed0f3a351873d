package spec

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestContainerDevices(t *testing.T) {
	for _, tc := range []struct {
		name       string
		devices    []*runtime.Device
		privileged bool
		tty        bool
		hostDev    bool
		noLookup   bool
		wantNodes  []string
		wantRules  []string
		err        error
	}{
		{name: "none", wantRules: []string{"deny a *:* rwm"}},
		{name: "one at another path", devices: []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/myfuse", Permissions: "rw"}},
			wantNodes: []string{"/dev/myfuse c 10:229"}, wantRules: []string{"deny a *:* rwm", "allow c 10:229 rw"}},
		{name: "default permissions and path", devices: []*runtime.Device{{HostPath: "/dev/fuse"}},
			wantNodes: []string{"/dev/fuse c 10:229"}, wantRules: []string{"deny a *:* rwm", "allow c 10:229 rwm"}},
		{name: "a directory", devices: []*runtime.Device{{HostPath: "/dev/snd", ContainerPath: "/dev/sound", Permissions: "r"}},
			wantNodes: []string{"/dev/sound/timer c 116:33", "/dev/sound/seq c 116:1"}, wantRules: []string{"deny a *:* rwm", "allow c 116:33 r", "allow c 116:1 r"}},
		{name: "privileged gets the host's devices and all rights", privileged: true,
			wantNodes: []string{"/dev/fuse c 10:229", "/dev/kvm c 10:232"}, wantRules: []string{"deny a *:* rwm", "allow a *:* rwm"}},
		{name: "tty with the host's /dev asks for /dev/console (unknown to the test lookup)", tty: true, hostDev: true, devices: []*runtime.Device{}, err: errdefs.ErrInvalidArgument},
		{name: "bad permissions", devices: []*runtime.Device{{HostPath: "/dev/fuse", Permissions: "rx"}}, err: errdefs.ErrInvalidArgument},
		{name: "repeated permission", devices: []*runtime.Device{{HostPath: "/dev/fuse", Permissions: "rr"}}, err: errdefs.ErrInvalidArgument},
		{name: "relative host path", devices: []*runtime.Device{{HostPath: "dev/fuse"}}, err: errdefs.ErrInvalidArgument},
		{name: "relative container path", devices: []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "fuse"}}, err: errdefs.ErrInvalidArgument},
		{name: "missing on the host", devices: []*runtime.Device{{HostPath: "/dev/nope"}}, err: errdefs.ErrInvalidArgument},
		{name: "no lookup", noLookup: true, devices: []*runtime.Device{{HostPath: "/dev/fuse"}}, err: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildContainer(t, func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, sb *runtime.PodSandboxConfig, o *ContainerOptions) {
				c.Devices, c.Tty = tc.devices, tc.tty
				sc(c).Privileged = tc.privileged
				sb.Linux.SecurityContext.Privileged = tc.privileged
				if tc.hostDev {
					c.Mounts = []*runtime.Mount{{ContainerPath: "/dev", HostPath: "/dev"}}
				}
				if tc.noLookup {
					o.Devices = nil
				}
			})
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			var nodes, rules []string
			for _, d := range s.Linux.Devices {
				nodes = append(nodes, fmtDevice(d))
			}
			for _, r := range s.Linux.Resources.Devices {
				rules = append(rules, fmtRule(r))
			}
			if !equalStrings(nodes, tc.wantNodes) || !equalStrings(rules, tc.wantRules) {
				t.Fatalf("nodes %q rules %q, want %q %q", nodes, rules, tc.wantNodes, tc.wantRules)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtDevice(d specs.LinuxDevice) string {
	return d.Path + " " + d.Type + " " + itoa(d.Major) + ":" + itoa(d.Minor)
}

func fmtRule(r specs.LinuxDeviceCgroup) string {
	s, typ, mm := "deny", r.Type, "*:*"
	if r.Allow {
		s = "allow"
	}
	if typ == "" {
		typ = "a"
	}
	if r.Major != nil {
		mm = itoa(*r.Major) + ":" + itoa(*r.Minor)
	}
	return s + " " + typ + " " + mm + " " + r.Access
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

// TestHostDevices reads the real /dev: /dev/null is c 1:3, a directory
// lists its nodes, a regular file is refused.
func TestHostDevices(t *testing.T) {
	devs, err := HostDevices("/dev/null")
	if err != nil || len(devs) != 1 || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 || devs[0].Path != "/dev/null" {
		t.Fatalf("/dev/null = %+v, %v", devs, err)
	}
	all, err := HostDevices("/dev")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range all {
		found = found || d.Path == "/dev/zero"
		if d.Path == "/dev/console" {
			t.Error("/dev/console listed")
		}
	}
	if !found {
		t.Fatalf("/dev/zero not among %d devices", len(all))
	}
	if _, err := HostDevices("/etc/hostname"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := HostDevices("/dev/does-not-exist"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("missing: %v", err)
	}
}
