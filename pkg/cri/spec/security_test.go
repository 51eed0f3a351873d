package spec

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/profiles/seccomp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

const localProfile = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
              {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
  "syscalls": [
    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
    {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
    {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}}
  ]
}`

func ruleNames(s *specs.LinuxSeccomp) []string {
	var out []string
	for _, r := range s.Syscalls {
		out = append(out, strings.Join(r.Names, ","))
	}
	return out
}

func TestSeccomp(t *testing.T) {
	rd := &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	local := &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/p.json"}
	for _, tc := range []struct {
		name       string
		sp         *runtime.SecurityProfile
		deprecated string
		privileged bool
		profile    string
		bounding   []string
		kernel     KernelVersion
		want       string // "" none, "default", or the rule names joined by " "
		err        error
	}{
		{name: "unset is unconfined", want: ""},
		{name: "unconfined", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, want: ""},
		{name: "runtime default", sp: rd, want: "default"},
		{name: "privileged has none", sp: rd, privileged: true, want: ""},
		{name: "deprecated runtime/default", deprecated: "runtime/default", want: "default"},
		{name: "deprecated docker/default", deprecated: "docker/default", want: "default"},
		{name: "deprecated unconfined", deprecated: "unconfined", want: ""},
		{name: "localhost", sp: local, profile: localProfile, kernel: KernelVersion{4, 4}, want: "read,write ptrace"},
		{name: "localhost with caps and new kernel", sp: local, profile: localProfile, bounding: []string{"CAP_SYS_ADMIN"}, kernel: KernelVersion{6, 1}, want: "read,write mount bpf"},
		{name: "localhost unknown kernel", sp: local, profile: localProfile, want: "read,write ptrace"},
		{name: "deprecated localhost", deprecated: "localhost//p.json", profile: localProfile, want: "read,write ptrace"},
		{name: "OCI form profile", sp: local, profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kexec_load"],"action":"SCMP_ACT_ERRNO"}]}`, want: "kexec_load"},
		{name: "empty profile object is none", sp: local, profile: `{}`, want: ""},
		{name: "localhost relative", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "p.json"}, profile: localProfile, err: errdefs.ErrInvalidArgument},
		{name: "localhost not read", sp: local, err: errdefs.ErrInvalidArgument},
		{name: "localhost bad JSON", sp: local, profile: `{"defaultAction":`, err: errdefs.ErrInvalidArgument},
		{name: "rules without default action", sp: local, profile: `{"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`, err: errdefs.ErrInvalidArgument},
		{name: "name and names", sp: local, profile: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}`, err: errdefs.ErrInvalidArgument},
		{name: "localhost_ref with runtime default", sp: &runtime.SecurityProfile{LocalhostRef: "/p"}, err: errdefs.ErrInvalidArgument},
		{name: "unknown type", sp: &runtime.SecurityProfile{ProfileType: 9}, err: errdefs.ErrInvalidArgument},
		{name: "unknown deprecated value", deprecated: "mine", err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if tc.profile != "" {
				data = []byte(tc.profile)
			}
			got, err := seccompFilter("seccomp", tc.sp, tc.deprecated, tc.privileged, data, tc.bounding, Host{Kernel: tc.kernel})
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("filter %+v, want none", got)
			case tc.want == "":
			case got == nil:
				t.Fatalf("no filter, want %s", tc.want)
			case tc.want == "default":
				if got.DefaultAction != specs.ActErrno || len(got.Syscalls) < 10 || !slices.Contains(got.Architectures, specs.ArchX86_64) {
					t.Fatalf("default filter %s", toJSON(t, got))
				}
			default:
				if names := strings.Join(ruleNames(got), " "); names != tc.want {
					t.Fatalf("rules %q, want %q", names, tc.want)
				}
			}
		})
	}
}

// TestSeccompDefaultDependsOnCaps: the default profile allows the mount
// family only with CAP_SYS_ADMIN in the bounding set, as moby's does.
func TestSeccompDefaultDependsOnCaps(t *testing.T) {
	allows := func(f *specs.LinuxSeccomp, name string) bool {
		for _, r := range f.Syscalls {
			if slices.Contains(r.Names, name) && r.Action == specs.ActAllow {
				return true
			}
		}
		return false
	}
	plain, err := resolveSeccomp(seccomp.DefaultProfile(), DefaultCapabilities(), KernelVersion{6, 1})
	wantErr(t, err, nil)
	admin, err := resolveSeccomp(seccomp.DefaultProfile(), append(DefaultCapabilities(), "CAP_SYS_ADMIN"), KernelVersion{6, 1})
	wantErr(t, err, nil)
	if allows(plain, "mount") || !allows(admin, "mount") {
		t.Fatalf("mount allowed without SYS_ADMIN %v, with %v", allows(plain, "mount"), allows(admin, "mount"))
	}
	if !allows(plain, "read") {
		t.Fatal("read not allowed")
	}
}

func TestSeccompPaths(t *testing.T) {
	c := testContainerConfig()
	if p := ContainerSeccompPath(c); p != "" {
		t.Fatalf("no profile: %q", p)
	}
	sc(c).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/p/a.json"}
	if p := ContainerSeccompPath(c); p != "/p/a.json" {
		t.Fatalf("localhost: %q", p)
	}
	s := testSandboxConfig()
	s.Linux.SecurityContext.SeccompProfilePath = "localhost//p/b.json"
	if p := SandboxSeccompPath(s); p != "/p/b.json" {
		t.Fatalf("deprecated localhost: %q", p)
	}
}

func TestAppArmor(t *testing.T) {
	local := &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "localhost/my-profile"}
	for _, tc := range []struct {
		name       string
		sp         *runtime.SecurityProfile
		deprecated string
		privileged bool
		apparmor   bool
		want       string
		err        error
	}{
		{name: "no apparmor, nothing asked", want: ""},
		{name: "no apparmor, unconfined", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, want: ""},
		{name: "no apparmor, runtime default", sp: &runtime.SecurityProfile{}, err: errdefs.ErrFailedPrecondition},
		{name: "no apparmor, localhost", sp: local, err: errdefs.ErrFailedPrecondition},
		{name: "unset is runtime default", apparmor: true, want: DefaultAppArmorProfile},
		{name: "runtime default privileged", apparmor: true, privileged: true, want: ""},
		{name: "localhost", apparmor: true, sp: local, want: "my-profile"},
		{name: "localhost privileged", apparmor: true, privileged: true, sp: local, want: "my-profile"},
		{name: "deprecated", apparmor: true, deprecated: "localhost/p2", want: "p2"},
		{name: "deprecated bad", apparmor: true, deprecated: "p2", err: errdefs.ErrInvalidArgument},
		{name: "empty localhost", apparmor: true, sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apparmorProfile(&runtime.LinuxContainerSecurityContext{Apparmor: tc.sp, ApparmorProfile: tc.deprecated}, tc.privileged, Host{AppArmor: tc.apparmor}, Runtime{})
			wantErr(t, err, tc.err)
			if got != tc.want {
				t.Fatalf("profile %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	for _, tc := range []struct {
		name               string
		masked, readonly   []string
		privileged         bool
		wantMasked, wantRO []string
		err                error
	}{
		{name: "defaults", wantMasked: DefaultMaskedPaths(), wantRO: DefaultReadonlyPaths()},
		{name: "request's lists", masked: []string{"/proc/kcore", "/x/"}, readonly: []string{"/proc/sys"}, wantMasked: []string{"/proc/kcore", "/x"}, wantRO: []string{"/proc/sys"}},
		{name: "privileged has none", privileged: true, masked: []string{"/proc/kcore"}},
		{name: "relative", masked: []string{"proc"}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildContainer(t, func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, sb *runtime.PodSandboxConfig, _ *ContainerOptions) {
				sc(c).MaskedPaths, sc(c).ReadonlyPaths, sc(c).Privileged = tc.masked, tc.readonly, tc.privileged
				sb.Linux.SecurityContext.Privileged = tc.privileged
			})
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			if !slices.Equal(s.Linux.MaskedPaths, tc.wantMasked) || !slices.Equal(s.Linux.ReadonlyPaths, tc.wantRO) {
				t.Fatalf("masked %q readonly %q, want %q %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, tc.wantMasked, tc.wantRO)
			}
		})
	}
}
