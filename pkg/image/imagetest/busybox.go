package imagetest

import (
	"archive/tar"
	"os"
	"os/exec"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/image"
)

// BusyboxApplets are the commands BusyboxLayer links to /bin/busybox.
func BusyboxApplets() []string {
	return []string{
		"[", "ash", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep", "head",
		"hostname", "id", "kill", "ln", "ls", "mkdir", "mount", "mv", "ps", "pwd", "rm",
		"sed", "sh", "sleep", "stat", "sync", "tail", "tee", "test", "touch", "true",
		"uname", "wc", "yes",
	}
}

// BusyboxLayer is a layer with the static busybox of this machine at
// /bin/busybox, the BusyboxApplets as symlinks to it in /bin, and the
// usual empty directories. The test is skipped if busybox is not in PATH.
func BusyboxLayer(t testing.TB, c image.Compression) Layer {
	t.Helper()
	path, err := exec.LookPath("busybox")
	if err != nil {
		testenv.Missing(t, "busybox is not installed: %v", err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read busybox: %v", err)
	}
	entries := []Entry{
		Dir("bin", 0o755),
		{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Content: bin},
	}
	for _, a := range BusyboxApplets() {
		entries = append(entries, Symlink("bin/"+a, "busybox"))
	}
	entries = append(entries,
		Dir("dev", 0o755), Dir("etc", 0o755), Dir("proc", 0o555), Dir("root", 0o700),
		Dir("sys", 0o555), Dir("tmp", 0o777|os.ModeSticky), Dir("var", 0o755),
		File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
		File("etc/group", "root:x:0:\nnobody:x:65534:\n", 0o644),
	)
	return NewLayer(t, c, entries...)
}
