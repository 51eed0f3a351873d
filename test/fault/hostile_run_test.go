package fault

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// containerCase is an image that pulls, over busybox, whose files or
// config attack the container made from it.
type containerCase struct {
	name   string
	files  func(h *hostileNode) []imagetest.Entry // a layer over busybox
	config ocispec.ImageConfig
	// sc changes the container's security context.
	sc func(*runtime.LinuxContainerSecurityContext)
	// volume, when set, is bound from a new directory of the host.
	volume string
	// want, when set, is what CreateContainer's InvalidArgument says; else
	// the container must start, and check runs against it.
	want  string
	check func(t *testing.T, h *hostileNode, id string)
}

// TestHostileContainers makes containers from images that pull fine but
// whose files or config attack the node when the container is made or
// run: user databases that are huge, FIFOs or symlinks to the host's;
// IDs over 2^31-1; a HOME that could inject lines; device nodes and
// setuid binaries; symlinks where the runtime mounts the pod's files or
// a volume, or makes the working directory. Each create is refused with
// InvalidArgument and leaves no container, snapshot, lease or mount, or
// the container runs without reaching the host; after each the host is
// untouched and the daemon serves.
func TestHostileContainers(t *testing.T) {
	h := newHostileNode(t)
	ctx := context.Background()
	pc := h.PodConfig("hostile")
	pod, err := h.RT.RunPodSandbox(ctx, pc, "")
	if err != nil {
		t.Fatal(err)
	}
	busybox := imagetest.BusyboxLayer(t, image.CompressionGzip)
	for i, c := range append(userDBCases(), runCases(t)...) {
		t.Run(c.name, func(t *testing.T) {
			before := h.state(t)
			cfg := c.config
			if len(cfg.Cmd) == 0 {
				cfg.Cmd = []string{"/bin/sleep", "3600"}
			}
			img := imagetest.Image{Layers: []imagetest.Layer{busybox, imagetest.NewLayer(t, image.CompressionGzip, c.files(h)...)}, Config: cfg}
			ref := h.pushImage(t, "files"+string(rune('a'+i)), img)
			if err := h.pull(ref); err != nil {
				t.Fatalf("pull: %v", err)
			}
			name := fmt.Sprintf("c%d", i)
			cc := &runtime.ContainerConfig{
				Metadata: &runtime.ContainerMetadata{Name: name},
				Image:    &runtime.ImageSpec{Image: ref},
				LogPath:  name + ".log",
				Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
			}
			if c.sc != nil {
				c.sc(cc.Linux.SecurityContext)
			}
			if c.volume != "" {
				cc.Mounts = []*runtime.Mount{{ContainerPath: c.volume, HostPath: t.TempDir()}}
			}
			id, err := h.RT.CreateContainer(ctx, pod, cc, pc)
			if c.want != "" {
				if err == nil {
					_ = h.RT.RemoveContainer(ctx, id)
				}
				wantCode(t, "create", err, codes.InvalidArgument, c.want)
			} else {
				h.run(t, id, err, c.check)
			}
			h.intact(t)
			h.removeImage(t, ref)
			h.settle(t, before)
		})
	}
}

// run starts the container id that CreateContainer returned with err,
// checks it, and removes it.
func (h *hostileNode) run(t *testing.T, id string, err error, check func(*testing.T, *hostileNode, string)) {
	t.Helper()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	ctx := context.Background()
	defer func() {
		if err := h.RT.StopContainer(ctx, id, 0); err != nil {
			t.Errorf("stop: %v", err)
		}
		if err := h.RT.RemoveContainer(ctx, id); err != nil {
			t.Errorf("remove: %v", err)
		}
	}()
	if err := h.RT.StartContainer(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	check(t, h, id)
}

func userDBCases() []containerCase {
	file := func(name, content string) func(*hostileNode) []imagetest.Entry {
		return func(*hostileNode) []imagetest.Entry { return []imagetest.Entry{imagetest.File(name, content, 0o644)} }
	}
	return []containerCase{
		{name: "passwd over 1 MiB", config: ocispec.ImageConfig{User: "alice"},
			files: file("etc/passwd", strings.Repeat("alice:x:1000:1000::/home/alice:/bin/sh\n", 30000)), want: "over the limit"},
		{name: "group over 1 MiB", config: ocispec.ImageConfig{User: "root"},
			files: file("etc/group", strings.Repeat("g:x:1:root\n", 100000)), want: "over the limit"},
		{name: "passwd a symlink to the host's", config: ocispec.ImageConfig{User: "hostuser"}, want: "/etc/passwd",
			files: func(h *hostileNode) []imagetest.Entry {
				return []imagetest.Entry{imagetest.Symlink("etc/passwd", filepath.Join(h.host, "passwd"))}
			}},
		{name: "passwd a symlink climbing to the host's", config: ocispec.ImageConfig{User: "hostuser"}, want: "/etc/passwd",
			files: func(h *hostileNode) []imagetest.Entry {
				return []imagetest.Entry{imagetest.Symlink("etc/passwd", "../"+up+h.host[1:]+"/passwd")}
			}},
		{name: "group a symlink to the host's", config: ocispec.ImageConfig{User: "root:hostgroup"}, want: "/etc/group",
			files: func(h *hostileNode) []imagetest.Entry {
				return []imagetest.Entry{imagetest.Symlink("etc/group", filepath.Join(h.host, "group"))}
			}},
		{name: "passwd a fifo", config: ocispec.ImageConfig{User: "alice"}, want: "not a regular file",
			files: func(*hostileNode) []imagetest.Entry {
				return []imagetest.Entry{imagetest.Device("etc/passwd", tar.TypeFifo, 0, 0, 0o644)}
			}},
		{name: "passwd malformed, user by name", config: ocispec.ImageConfig{User: "alice"}, want: "no such user",
			files: file("etc/passwd", "alice:x:-1:0::/:/bin/sh\nalice:x:1:1::\nalice\x00:x:1:1::/:/bin/sh\n alice:x:1:1::/:/bin/sh\n\xff\xfe:x:0:0::/:\n")},
		{name: "uid over 2^31-1 in USER", config: ocispec.ImageConfig{User: "2147483648"}, want: "out of range",
			files: file("f", "")},
		{name: "uid over 2^32 in passwd", config: ocispec.ImageConfig{User: "alice"}, want: "out of range",
			files: file("etc/passwd", "alice:x:4294967296:0::/:/bin/sh\n")},
		{name: "gid over 2^31-1 in group", config: ocispec.ImageConfig{User: "root:big"}, want: "out of range",
			files: file("etc/group", "big:x:2147483648:\n")},
		{name: "HOME with a newline in env", config: ocispec.ImageConfig{Env: []string{"HOME=/home/a\nPATH=/evil"}}, want: "HOME",
			files: file("f", "")},
		{name: "HOME with a control character in passwd", config: ocispec.ImageConfig{User: "alice"}, want: "HOME",
			files: file("etc/passwd", "alice:x:1000:1000::/home/\x1b]0;pwned\x07:/bin/sh\n")},
	}
}

func runCases(t *testing.T) []containerCase {
	euid := euidProgram(t)
	return []containerCase{
		{name: "malformed passwd, numeric user", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUser = &runtime.Int64Value{Value: 1000} },
			files: func(*hostileNode) []imagetest.Entry {
				return []imagetest.Entry{imagetest.File("etc/passwd", "\x00\xff:x:::\nroot:x:0:0\n", 0o644)}
			},
			check: func(t *testing.T, h *hostileNode, id string) { wantExec(t, h, id, "1000\n", "/bin/id", "-u") }},
		// Device nodes of a layer are kept, as containerd keeps them; the
		// device cgroup lets the container open none of them.
		{name: "device nodes", files: func(*hostileNode) []imagetest.Entry {
			return []imagetest.Entry{imagetest.Dir("evil", 0o755),
				imagetest.Device("evil/mem", tar.TypeChar, 1, 1, 0o666), imagetest.Device("evil/sda", tar.TypeBlock, 8, 0, 0o666)}
		}, check: func(t *testing.T, h *hostileNode, id string) {
			for _, dev := range []string{"/evil/mem", "/evil/sda"} {
				out, stderr, err := h.RT.ExecSync(context.Background(), id, []string{"/bin/head", "-c", "1", dev}, 10*time.Second)
				if err == nil || !strings.Contains(string(stderr), "not permitted") {
					t.Errorf("read of %s: %q %q, %v; want: not permitted", dev, out, stderr, err)
				}
			}
		}},
		// Setuid bits of a layer are kept, as containerd keeps them: a
		// setuid-root program runs as root in a container that allows
		// privilege escalation, and as its caller under no_new_privs.
		{name: "setuid program", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.RunAsUser = &runtime.Int64Value{Value: 1000} },
			files: func(*hostileNode) []imagetest.Entry {
				return []imagetest.Entry{{Name: "euid", Type: tar.TypeReg, Mode: 0o755 | os.ModeSetuid, Content: euid}}
			},
			check: func(t *testing.T, h *hostileNode, id string) { wantExec(t, h, id, "0\n", "/euid") }},
		{name: "setuid program under no_new_privs", sc: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.RunAsUser, sc.NoNewPrivs = &runtime.Int64Value{Value: 1000}, true
		}, files: func(*hostileNode) []imagetest.Entry {
			return []imagetest.Entry{{Name: "euid", Type: tar.TypeReg, Mode: 0o755 | os.ModeSetuid, Content: euid}}
		}, check: func(t *testing.T, h *hostileNode, id string) { wantExec(t, h, id, "1000\n", "/euid") }},
		// The pod's files are mounted over the image's: symlinks there are
		// resolved inside the rootfs, never to the host's files.
		{name: "pod files over symlinks to the host", files: func(h *hostileNode) []imagetest.Entry {
			return []imagetest.Entry{imagetest.Symlink("etc/resolv.conf", h.sentinel), imagetest.Symlink("etc/hosts", up+h.sentinel[1:]),
				imagetest.Symlink("etc/hostname", h.sentinel)}
		}, check: func(t *testing.T, h *hostileNode, id string) {
			if m := crinode.MountsUnder(t, h.host); len(m) > 0 {
				t.Errorf("mounts on the host: %v", m)
			}
			for _, f := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/hostname"} {
				out, _, err := h.RT.ExecSync(context.Background(), id, []string{"/bin/cat", f}, 10*time.Second)
				if err != nil || strings.Contains(string(out), sentinelContent) {
					t.Errorf("%s in the container: %q, %v", f, out, err)
				}
			}
		}},
		{name: "volume over a symlink to the host", files: func(h *hostileNode) []imagetest.Entry {
			return []imagetest.Entry{imagetest.Symlink("data", h.host)}
		}, volume: "/data/x", check: func(t *testing.T, h *hostileNode, id string) {
			if m := crinode.MountsUnder(t, h.host); len(m) > 0 {
				t.Errorf("mounts on the host: %v", m)
			}
		}},
		// The runtime makes the working directory inside the rootfs, where
		// the symlink dangles: refused, nothing made on the host.
		{name: "working directory through a symlink to the host", config: ocispec.ImageConfig{WorkingDir: "/w/sub"}, want: "/w",
			files: func(h *hostileNode) []imagetest.Entry { return []imagetest.Entry{imagetest.Symlink("w", h.host)} }},
	}
}

// wantExec runs cmd in the container id and wants its output.
func wantExec(t *testing.T, h *hostileNode, id, want string, cmd ...string) {
	t.Helper()
	out, stderr, err := h.RT.ExecSync(context.Background(), id, cmd, 10*time.Second)
	if err != nil || string(out) != want {
		t.Errorf("%v: %q %q, %v; want %q", cmd, out, stderr, err, want)
	}
}

// euidProgram is a static program that prints its effective UID.
func euidProgram(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(os.Geteuid()) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "euid"), src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "euid"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
