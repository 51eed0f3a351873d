package spec

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"
	"unicode"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// fuzzSeeds are container configs that reach most branches.
func fuzzSeeds() []*runtime.ContainerConfig {
	full := testContainerConfig()
	full.Command, full.Args, full.WorkingDir = []string{"/bin/sh"}, []string{"-c", "true"}, "/w"
	full.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte("1")}, {Key: "HOME", Value: []byte("/h")}}
	full.Mounts = []*runtime.Mount{
		{ContainerPath: "/data", HostPath: "/host", Readonly: true, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/img", HostPath: "/view", Image: &runtime.ImageSpec{Image: "x"}, MountOptions: []string{"nodev"}},
	}
	full.Devices = []*runtime.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/f", Permissions: "rw"}}
	full.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 24, CpuQuota: 1000, CpuPeriod: 10000, OomScoreAdj: 10, CpusetCpus: "0-1"}
	s := sc(full)
	s.RunAsUsername, s.SupplementalGroups = "alice", []int64{4}
	s.Capabilities = &runtime.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"CHOWN"}}
	s.Seccomp = &runtime.SecurityProfile{}
	s.MaskedPaths = []string{"/proc/x"}
	s.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
	priv := testContainerConfig()
	sc(priv).Privileged = true
	sc(priv).RunAsUser, sc(priv).RunAsGroup = i64(1000), i64(10)
	return []*runtime.ContainerConfig{testContainerConfig(), full, priv}
}

// FuzzContainerSpec feeds serialised container configs, image configs and
// pod sandbox flags to Container. It must never panic, and a spec it
// returns must not escape: absolute clean mount destinations and sources,
// IDs within range, an absolute cwd, no NUL in args or env, a cgroup path
// under the parent, only known capabilities.
func FuzzContainerSpec(f *testing.F) {
	for _, c := range fuzzSeeds() {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		img, _ := json.Marshal(testImage())
		f.Add(b, img, true, "alice")
		f.Add(b, []byte(`{"User":"1000:wheel","Entrypoint":[""],"Cmd":["x"],"WorkingDir":"/a/../b"}`), false, "evil")
	}
	f.Fuzz(func(t *testing.T, cfgBytes, imageJSON []byte, privilegedPod bool, extraUser string) {
		cfg := &runtime.ContainerConfig{}
		if err := proto.Unmarshal(cfgBytes, cfg); err != nil {
			return
		}
		var image ocispec.ImageConfig
		if err := json.Unmarshal(imageJSON, &image); err != nil {
			return
		}
		sandbox := testSandboxConfig()
		sandbox.Linux.SecurityContext.Privileged = privilegedPod
		opts := testOptions()
		opts.Users.Passwd = append(opts.Users.Passwd, ParsePasswd([]byte(extraUser))...)
		opts.SeccompProfile = []byte(localProfile)
		s, err := Container(&image, cfg, sandbox, opts)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) && !errdefs.IsNotImplemented(err) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		checkSpec(t, s, "/kubepods/pod-uid", "cid")
	})
}

// checkSpec fails when s could reach outside what the request may touch.
func checkSpec(t *testing.T, s *specs.Spec, parent, id string) {
	t.Helper()
	if _, err := json.Marshal(s); err != nil {
		t.Fatalf("spec does not marshal: %v", err)
	}
	absClean := func(what, p string) {
		if !path.IsAbs(p) || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
			t.Fatalf("%s %q: not an absolute clean path", what, p)
		}
	}
	for _, m := range s.Mounts {
		absClean("mount destination", m.Destination)
		if m.Type == "bind" {
			absClean("bind source", m.Source)
		}
	}
	p := s.Process
	if p.User.UID > MaxID || p.User.GID > MaxID {
		t.Fatalf("user %+v out of range", p.User)
	}
	for _, g := range p.User.AdditionalGids {
		if g > MaxID {
			t.Fatalf("gid %d out of range", g)
		}
	}
	absClean("cwd", p.Cwd)
	if len(p.Args) == 0 {
		t.Fatal("no args")
	}
	for _, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			t.Fatalf("NUL in arg %q", a)
		}
	}
	for _, e := range p.Env {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			t.Fatalf("env %q", e)
		}
		if k == "HOME" && strings.IndexFunc(v, unicode.IsControl) >= 0 {
			t.Fatalf("HOME %q", v)
		}
	}
	if s.Linux.CgroupsPath != path.Join(parent, id) {
		t.Fatalf("cgroups path %q", s.Linux.CgroupsPath)
	}
	for _, d := range s.Linux.Devices {
		absClean("device", d.Path)
	}
	for _, l := range [][]string{s.Linux.MaskedPaths, s.Linux.ReadonlyPaths} {
		for _, m := range l {
			absClean("masked or read-only path", m)
		}
	}
	c := p.Capabilities
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Ambient, c.Inheritable} {
		for _, n := range set {
			if !slices.Contains(knownCapabilities, n) {
				t.Fatalf("capability %q", n)
			}
		}
	}
}

// FuzzSandboxSpec feeds serialised pod configs and pause image configs
// to Sandbox, with either cgroup driver. It must never panic; a refusal
// has a class; a spec it returns holds what FuzzContainerSpec checks (the
// cgroup under the pod's parent), and the pause container's own
// guarantees: a read-only rootfs, no new privileges, the pod's network
// namespace when it has one, a hostname without a path separator or a
// line break, sysctls only of the namespaces the pod owns.
func FuzzSandboxSpec(f *testing.F) {
	full := testSandboxConfig()
	full.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.shmmax": "65536", "net/core/somaxconn": "1"}
	full.Linux.SecurityContext.RunAsUser, full.Linux.SecurityContext.RunAsGroup = i64(1234), i64(5678)
	full.Linux.SecurityContext.SupplementalGroups = []int64{3, 1}
	full.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{}
	full.Labels, full.Annotations = map[string]string{"a": "b"}, map[string]string{"c": "d"}
	host := testSandboxConfig()
	host.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE}
	host.Linux.SecurityContext.Privileged = true
	host.Linux.CgroupParent = "kubepods-besteffort-podx.slice"
	evil := testSandboxConfig()
	evil.Hostname = "a/../b\n"
	evil.Linux.CgroupParent = "/../../x/./y/"
	evil.Linux.Sysctls = map[string]string{"net.ipv4/../../kernel/panic": "1", "kernel.shm+max": "1"}
	for _, c := range []*runtime.PodSandboxConfig{testSandboxConfig(), full, host, evil} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		img, _ := json.Marshal(pauseImage())
		f.Add(b, img, false)
		f.Add(b, img, true)
		f.Add(b, []byte(`{"User":"4294967296","Entrypoint":["/pause"],"Env":["HOME=/a\nb","=x","A"]}`), false)
	}
	f.Fuzz(func(t *testing.T, cfgBytes, imageJSON []byte, systemd bool) {
		cfg := &runtime.PodSandboxConfig{}
		if err := proto.Unmarshal(cfgBytes, cfg); err != nil {
			return
		}
		var image ocispec.ImageConfig
		if err := json.Unmarshal(imageJSON, &image); err != nil {
			return
		}
		opts := sandboxOptions()
		opts.Users = testUsers()
		opts.SeccompProfile = []byte(localProfile)
		if systemd {
			opts.Runtime.CgroupDriver = Systemd
		}
		hostNet := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
		if hostNet {
			opts.NetNSPath = ""
		}
		s, err := Sandbox(&image, cfg, opts)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) && !errdefs.IsNotImplemented(err) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		checkSandboxSpec(t, s, cfg, opts, hostNet)
	})
}

func checkSandboxSpec(t *testing.T, s *specs.Spec, cfg *runtime.PodSandboxConfig, opts SandboxOptions, hostNet bool) {
	t.Helper()
	if opts.Runtime.CgroupDriver == Systemd {
		if want := ":cri-runtime:" + opts.ID; !strings.HasSuffix(s.Linux.CgroupsPath, want) || strings.ContainsAny(strings.TrimSuffix(s.Linux.CgroupsPath, want), "/:\x00") {
			t.Fatalf("systemd cgroups path %q", s.Linux.CgroupsPath)
		}
		s.Linux.CgroupsPath = path.Join("/x", opts.ID) // checked; let checkSpec see a cgroupfs one
	}
	checkSpec(t, s, path.Dir(s.Linux.CgroupsPath), opts.ID)
	if parent := cfg.GetLinux().GetCgroupParent(); opts.Runtime.CgroupDriver != Systemd && parent != "" && path.Dir(s.Linux.CgroupsPath) != parent {
		t.Fatalf("cgroups path %q is not under the pod's parent %q", s.Linux.CgroupsPath, parent)
	}
	if !s.Root.Readonly || !s.Process.NoNewPrivileges {
		t.Fatalf("root %+v no new privileges %v", s.Root, s.Process.NoNewPrivileges)
	}
	if strings.ContainsAny(s.Hostname, "/\x00\n") {
		t.Fatalf("hostname %q", s.Hostname)
	}
	var netns *specs.LinuxNamespace
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			netns = &s.Linux.Namespaces[i]
		}
	}
	if hostNet != (netns == nil) || (netns != nil && netns.Path != opts.NetNSPath) {
		t.Fatalf("host network %v, network namespace %+v", hostNet, netns)
	}
	for k := range s.Linux.Sysctl {
		name := strings.ReplaceAll(k, "/", ".")
		owned := strings.HasPrefix(name, "net.") || name == "kernel.sem" || strings.HasPrefix(name, "kernel.shm") ||
			strings.HasPrefix(name, "kernel.msg") || strings.HasPrefix(name, "fs.mqueue.")
		if !owned || strings.Contains(k, "..") || (hostNet && strings.HasPrefix(name, "net.")) {
			t.Fatalf("sysctl %q", k)
		}
	}
}

// FuzzPasswd: parsing never panics; every entry it keeps is one line of
// seven fields; resolving it either yields in-range IDs or InvalidArgument.
func FuzzPasswd(f *testing.F) {
	f.Add([]byte(testPasswd), "alice")
	f.Add([]byte("a:x:1:1::/:/bin/sh\r\nb:x:99999999999999999999:1::/:\n"), "b")
	f.Add([]byte("\x00:x:0:0:\n\n#:x:1:1::/:/bin/sh"), "#")
	f.Fuzz(func(t *testing.T, data []byte, user string) {
		if len(data) > MaxUserFileSize {
			return
		}
		db := &UserDB{Passwd: ParsePasswd(data)}
		for _, e := range db.Passwd {
			if e.Name == "" || strings.ContainsAny(e.Name+e.Home, ":\n") {
				t.Fatalf("entry %+v", e)
			}
			checkResolved(t, e.Name, db)
		}
		checkResolved(t, user, db)
	})
}

// FuzzGroup: as FuzzPasswd for group files and the supplemental groups
// they give.
func FuzzGroup(f *testing.F) {
	f.Add([]byte(testGroup), "alice")
	f.Add([]byte("g:x:4294967296:u\ng2:x:5:u,,u , v\n"), "u")
	f.Fuzz(func(t *testing.T, data []byte, user string) {
		if len(data) > MaxUserFileSize {
			return
		}
		db := &UserDB{Passwd: ParsePasswd([]byte(testPasswd)), Group: ParseGroup(data)}
		for _, g := range db.Group {
			if g.Name == "" || strings.ContainsAny(g.Name, ":\n") {
				t.Fatalf("group %+v", g)
			}
			for _, m := range g.Members {
				if m == "" || strings.ContainsAny(m, ",:\n") {
					t.Fatalf("member %q of %+v", m, g)
				}
			}
			checkResolved(t, "alice:"+g.Name, db)
		}
		gids, err := imageGroups(identity{name: user}, db)
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatal(err)
		}
		for _, g := range gids {
			if g > MaxID {
				t.Fatalf("gid %d", g)
			}
		}
	})
}

func checkResolved(t *testing.T, user string, db *UserDB) {
	t.Helper()
	id, err := resolveUser(user, db)
	if err != nil {
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("user %q: %v", user, err)
		}
		return
	}
	if id.uid > MaxID || id.gid > MaxID {
		t.Fatalf("user %q resolved out of range: %+v", user, id)
	}
}
