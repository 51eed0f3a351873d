package images

import (
	"archive/tar"
	"debug/elf"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// stubApplets are the stub's programs that stand in for busybox applets
// critest runs, linked in /bin unless the busybox has them.
var stubApplets = []string{"pgrep", "ipcs"}

// critestCommands are the commands critest runs in the busybox-based
// images (pkg/validate): each must be in /bin.
var critestCommands = []string{
	"sh", "echo", "sleep", "top", "ls", "id", "touch", "cat", "grep", "dd", "mount", "mkdir",
	"chmod", "hostname", "ping", "brctl", "netstat", "pidof", "pgrep", "ipcs", "[",
}

func TestMain(m *testing.M) {
	code := m.Run()
	if stubPath != "" {
		_ = os.RemoveAll(filepath.Dir(stubPath))
	}
	os.Exit(code)
}

var (
	stubOnce sync.Once
	stubPath string
	stubErr  error
)

// buildStub builds the stub program, static, once per test binary.
func buildStub(t *testing.T) []byte {
	t.Helper()
	stubOnce.Do(func() {
		dir, err := os.MkdirTemp("", "critest-stub-")
		if err != nil {
			stubErr = err
			return
		}
		stubPath = filepath.Join(dir, "critest-stub")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", stubPath, "./stub")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			stubErr = &buildError{err: err, out: string(out)}
		}
	})
	if stubErr != nil {
		t.Fatalf("build the stub: %v", stubErr)
	}
	b, err := os.ReadFile(stubPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// busyboxBinary finds the busybox to build on: flag -busybox, else
// busybox in PATH.
func busyboxBinary(t *testing.T) string {
	t.Helper()
	if *busyboxFlag != "" {
		return *busyboxFlag
	}
	p, err := exec.LookPath("busybox")
	if err != nil {
		testenv.Missing(t, "busybox is not installed (Debian package busybox-static): %v", err)
	}
	return p
}

// sharedLibraries lists the absolute paths of the interpreter and the
// libraries a dynamic executable loads (ldd), none for a static one.
func sharedLibraries(t *testing.T, bin string) []string {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("busybox %s: %v", bin, err)
	}
	defer f.Close()
	dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	if !dynamic {
		return nil
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, field := range strings.Fields(line) {
			if strings.HasPrefix(field, "/") && !slices.Contains(libs, field) {
				libs = append(libs, field)
			}
		}
	}
	return libs
}

// baseLayer is the busybox base of the busybox-based images: the layout
// and /etc of the busybox image, busybox with every applet a hard link in
// /bin (so that masking /bin/ls masks ls alone), the libraries a dynamic
// busybox needs, and the stub with the applets busybox lacks.
func baseLayer(t *testing.T, busybox string, stub []byte) imagetest.Layer {
	t.Helper()
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", busybox, err)
	}
	applets := strings.Fields(string(out))
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "usr/local",
		"usr/local/bin", "var", "var/spool", "var/spool/mail", "var/www"}
	var files []imagetest.Entry
	for _, lib := range sharedLibraries(t, busybox) {
		content, err := os.ReadFile(lib)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(lib, "/")
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
		files = append(files, imagetest.Entry{Name: name, Type: tar.TypeReg, Mode: 0o755, Content: content})
	}
	slices.Sort(dirs) // parents first
	var entries []imagetest.Entry
	for _, d := range dirs {
		entries = append(entries, imagetest.Dir(d, 0o755))
	}
	entries = append(entries,
		imagetest.Dir("root", 0o700), imagetest.Dir("tmp", 0o777|os.ModeSticky),
		imagetest.File("etc/passwd", busyboxPasswd, 0o644),
		imagetest.File("etc/group", busyboxGroup, 0o644),
		imagetest.Entry{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Content: bin},
		imagetest.Entry{Name: "bin/critest-stub", Type: tar.TypeReg, Mode: 0o755, Content: stub},
	)
	entries = append(entries, files...)
	for _, a := range applets {
		if a != "busybox" {
			entries = append(entries, hardlink("bin/"+a, "bin/busybox"))
		}
	}
	for _, a := range stubApplets {
		if !slices.Contains(applets, a) {
			entries = append(entries, hardlink("bin/"+a, "bin/critest-stub"))
		}
	}
	return imagetest.NewLayer(t, image.CompressionGzip, entries...)
}

// hardlink is a hard link to an executable. Its header carries the mode
// of the file, as tar writes it: appliers may chmod the link (and so the
// file) to the header's mode.
func hardlink(name, target string) imagetest.Entry {
	return imagetest.Entry{Name: name, Type: tar.TypeLink, Mode: 0o755, Target: target}
}

// built is one catalogue image, built.
type built struct {
	Image
	// Blobs is what is pushed: the index or the manifest, and below.
	Blobs imagetest.Built
	// Config is the config of the (only) platform image.
	Config ocispec.Descriptor
}

// buildImage builds img, on base if it is busybox-based.
func buildImage(t *testing.T, img Image, base imagetest.Layer, stub []byte) built {
	t.Helper()
	var layers []imagetest.Layer
	if img.Busybox {
		layers = append(layers, base)
	}
	if len(img.Files) > 0 {
		layers = append(layers, imagetest.NewLayer(t, image.CompressionGzip, fileEntries(img.Files, stub)...))
	}
	cfg := img.Config
	if cfg.Env == nil {
		cfg.Env = []string{Path}
	}
	one := imagetest.Image{
		Layers:   layers,
		Config:   cfg,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Docker:   img.Docker,
	}
	b := built{Image: img, Blobs: one.Build(t)}
	b.Config = b.Blobs.Config
	if img.Index {
		b.Blobs = imagetest.Index{Images: []imagetest.Image{one}, Docker: img.Docker}.Build(t)
	}
	return b
}

func fileEntries(files []File, stub []byte) []imagetest.Entry {
	var entries []imagetest.Entry
	for _, f := range files {
		var e imagetest.Entry
		switch {
		case f.Dir:
			e = imagetest.Dir(f.Path, 0o755)
		case f.Symlink != "":
			e = imagetest.Symlink(f.Path, f.Symlink)
		case f.Stub:
			e = imagetest.Entry{Name: f.Path, Type: tar.TypeReg, Mode: 0o755, Content: stub}
		default:
			e = imagetest.File(f.Path, f.Content, 0o644)
		}
		if f.Mode != 0 {
			e.Mode = os.FileMode(f.Mode & 0o777)
			if f.Mode&0o4000 != 0 {
				e.Mode |= os.ModeSetuid
			}
		}
		e.UID, e.GID = f.UID, f.UID
		entries = append(entries, e)
	}
	return entries
}
