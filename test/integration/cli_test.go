package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestCLINamespaces(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()
	d.ok(nil, "default", "namespaces", "create", "team-a", "owner=alice", "tier=gold")
	d.ok(nil, "default", "namespaces", "label", "team-a", "tier=silver", "owner=")
	out := d.ok(nil, "default", "namespaces", "ls")
	if !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "team-a") || !strings.Contains(out, "tier=silver") || strings.Contains(out, "owner") {
		t.Fatalf("namespaces ls:\n%s", out)
	}

	// A namespace that holds a blob cannot be removed until it is empty.
	blob := "hello, namespaces\n"
	dgst := strings.TrimSpace(d.ok(strings.NewReader(blob), "team-a", "content", "ingest", "--ref", "hello", "--label", "cri-runtime.io/gc.root=cli"))
	if dgst != digest.FromString(blob).String() {
		t.Fatalf("ingest printed %q, want %s", dgst, digest.FromString(blob))
	}
	if got := d.ok(nil, "team-a", "content", "get", dgst); got != blob {
		t.Fatalf("content get = %q", got)
	}
	if got := d.ok(nil, "team-b", "content", "ls", "-q"); got != "" {
		t.Fatalf("team-b sees content of team-a: %q", got)
	}
	d.fails(nil, "default", []string{"namespaces", "rm", "team-a"}, `"team-a"`, "failed precondition")
	d.ok(nil, "team-a", "content", "rm", dgst)
	d.ok(nil, "default", "namespaces", "rm", "team-a")
	if out := d.ok(nil, "default", "namespaces", "ls", "-q"); strings.Contains(out, "team-a") {
		t.Fatalf("team-a still listed:\n%s", out)
	}
	d.fails(nil, "default", []string{"images", "rm", "nothing:1"}, `"nothing:1"`, "not found")
}

func TestCLILeases(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()
	if id := strings.TrimSpace(d.ok(nil, "default", "leases", "create", "--id", "l1", "--expires", "1h", "k=v")); id != "l1" {
		t.Fatalf("leases create printed %q", id)
	}
	out := d.ok(nil, "default", "leases", "ls")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "l1 ") || !strings.Contains(out, "k=v") {
		t.Fatalf("leases ls:\n%s", out)
	}
	d.ok(nil, "default", "leases", "rm", "--sync", "l1")
	if out := d.ok(nil, "default", "leases", "ls", "-q"); out != "" {
		t.Fatalf("leases after rm: %q", out)
	}
}

// TestCLIBadInput checks that bad input gets the right class and a message
// naming the bad value, and leaves nothing half-written behind.
func TestCLIBadInput(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()

	d.fails(nil, "default", []string{"images", "ls", `name~=(`}, `name~=(`, "invalid argument")
	d.fails(nil, "default", []string{"content", "active", `ref==`}, `ref==`, "invalid argument")
	d.fails(nil, "default", []string{"namespaces", "create", "bad/name"}, `"bad/name"`, "invalid argument")
	d.fails(nil, "bad namespace", []string{"images", "ls"}, `"bad namespace"`, "invalid argument")
	d.fails(nil, "default", []string{"leases", "create", "--id=-lease"}, `"-lease"`, "invalid argument")
	d.fails(nil, "default", []string{"content", "get", "sha256:xyz"}, `"sha256:xyz"`, "invalid argument")
	d.fails(nil, "default", []string{"namespaces", "create", "ok", "nolabel"}, `"nolabel"`, "invalid argument")
	d.fails(nil, "default", []string{"leases", "create", "--expires", "-5s"}, "-5s", "invalid argument")
	d.fails(strings.NewReader("x"), "default", []string{"content", "ingest", "--ref", "neg", "--expected-size", "-5"}, "-5", "invalid argument")
	if out := d.ok(nil, "default", "leases", "ls", "-q"); out != "" {
		t.Fatalf("leases after a refused create: %q", out)
	}

	// Data that does not match its expected digest is refused and dropped.
	wrong := digest.FromString("something else")
	d.fails(strings.NewReader("the real bytes"), "default",
		[]string{"content", "ingest", "--ref", "mismatch", "--expected-digest", wrong.String()},
		`"mismatch"`, "failed precondition")
	if out := d.ok(nil, "default", "content", "active"); strings.Contains(out, "mismatch") {
		t.Fatalf("the refused ingest is still active:\n%s", out)
	}
	if out := d.ok(nil, "default", "content", "ls", "-q"); out != "" {
		t.Fatalf("content after a refused ingest: %q", out)
	}
	// A wrong size too.
	d.fails(strings.NewReader("twelve bytes"), "default",
		[]string{"content", "ingest", "--ref", "short", "--expected-size", "13"}, `"short"`, "failed precondition")
	d.stop()
	for _, dir := range []string{"ingest", "blobs"} {
		var found []string
		filepath.WalkDir(filepath.Join(d.root, "content", dir), func(path string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				found = append(found, path)
			}
			return nil
		})
		if len(found) != 0 {
			t.Errorf("left in content/%s: %v", dir, found)
		}
	}
	d.start()
}

func TestCLIEvents(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()
	cmd := exec.Command(criRuntime, "--address", d.address, "events", `topic=="/namespaces/create"`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	// The subscription starts at some point after the process does: create
	// namespaces until one is seen.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("events ended: %s", stderr.String())
			}
			f := strings.SplitN(line, " ", 4)
			if len(f) != 4 || f[2] != "/namespaces/create" || !strings.HasPrefix(f[3], `{"name":"ev-`) {
				t.Fatalf("event line %q: want TIMESTAMP NAMESPACE /namespaces/create {\"name\":\"ev-N\"...}", line)
			}
			if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
				t.Fatalf("event line %q: timestamp: %v", line, err)
			}
			return
		case <-tick.C:
			d.ok(nil, "default", "namespaces", "create", fmt.Sprintf("ev-%d", i))
		case <-deadline:
			t.Fatalf("no event line; stderr: %s", stderr.String())
		}
	}
}

// TestCLIIngestAndGC guards against content ingested as the README says
// vanishing at the next garbage collection without a word: --lease keeps
// it, a gc.root label keeps it, and without either the CLI warns.
func TestCLIIngestAndGC(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()
	d.ok(nil, "default", "leases", "create", "--id", "keep")
	ingest := func(data string, args ...string) (digest.Digest, string) {
		t.Helper()
		cmd := exec.Command(criRuntime, append([]string{"--address", d.address}, args...)...)
		cmd.Stdin = strings.NewReader(data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, stderr.String())
		}
		return digest.Digest(strings.TrimSpace(stdout.String())), stderr.String()
	}
	leased, warn := ingest("kept by a lease", "--lease", "keep", "content", "ingest", "--ref", "a")
	if warn != "" {
		t.Errorf("ingest under a lease warned: %q", warn)
	}
	rooted, warn := ingest("kept by a label", "content", "ingest", "--ref", "b", "--label", "cri-runtime.io/gc.root=test")
	if warn != "" {
		t.Errorf("ingest with a gc.root label warned: %q", warn)
	}
	loose, warn := ingest("kept by nothing", "content", "ingest", "--ref", "c")
	if !strings.Contains(warn, "warning") || !strings.Contains(warn, "garbage collection") || !strings.Contains(warn, string(loose)) || !strings.Contains(warn, "--lease") {
		t.Errorf("ingest of an unreferenced blob: stderr %q, want a warning that GC removes it", warn)
	}
	// A synchronous collection, as an unrelated deletion triggers one.
	d.ok(nil, "default", "leases", "create", "--id", "other")
	d.ok(nil, "default", "leases", "rm", "--sync", "other")
	ls := d.ok(nil, "default", "content", "ls", "-q")
	for _, kept := range []digest.Digest{leased, rooted} {
		if !strings.Contains(ls, kept.String()) {
			t.Errorf("blob %s collected although held:\n%s", kept, ls)
		}
	}
	if strings.Contains(ls, loose.String()) {
		t.Errorf("unreferenced blob %s not collected:\n%s", loose, ls)
	}
}

// TestCLITablesAreNarrow guards the tables against full digests, media
// types and GC labels (they ran to ~250 columns); -o json has it all.
func TestCLITablesAreNarrow(t *testing.T) {
	d := newDaemon(t)
	d.start()
	defer d.stop()
	args := []string{"content", "ingest", "--ref", "wide", "--label", "cri-runtime.io/gc.root=test", "--label", "team=storage"}
	for i := range 8 {
		args = append(args, "--label", fmt.Sprintf("cri-runtime.io/gc.ref.content.l.%d=%s", i, digest.FromString(fmt.Sprint(i))))
	}
	dgst := strings.TrimSpace(d.ok(strings.NewReader(strings.Repeat("wide", 5000)), "default", args...))
	d.ok(nil, "default", "leases", "create", "--id", "a-lease", "purpose=test")
	d.ok(nil, "default", "namespaces", "label", "default", "tier=gold")
	for _, cmd := range [][]string{{"content", "ls"}, {"content", "active"}, {"leases", "ls"}, {"namespaces", "ls"}, {"snapshots", "ls"}, {"snapshots", "usage"}} {
		out := d.ok(nil, "default", cmd...)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if len(line) > 120 {
				t.Errorf("%v: a line of %d columns:\n%s", cmd, len(line), out)
			}
		}
	}
	out := d.ok(nil, "default", "content", "ls")
	if !strings.Contains(out, "19.5 KiB") || !strings.Contains(out, "8 gc refs") || !strings.Contains(out, dgst[:len("sha256:")+12]) {
		t.Errorf("content ls: want the size in KiB, the GC references counted and the digest cut:\n%s", out)
	}
	var infos []struct {
		Digest string
		Size   int64
		Labels map[string]string
	}
	if err := json.Unmarshal([]byte(d.ok(nil, "default", "-o", "json", "content", "ls")), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Digest != dgst || infos[0].Size != 20000 || len(infos[0].Labels) != 10 {
		t.Errorf("content ls -o json: %+v", infos)
	}
	d.fails(nil, "default", []string{"-o", "yaml", "leases", "ls"}, `"yaml"`, "invalid argument")
}
