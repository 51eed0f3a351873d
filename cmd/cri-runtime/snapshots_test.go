package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// runSnapshots runs `snapshots args...` against the daemon at address and
// returns its output.
func runSnapshots(t *testing.T, address string, args ...string) (string, error) {
	t.Helper()
	cmd := newSnapshotsCommand(&globals{address: address, namespace: "cli"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSnapshotsCommand(t *testing.T) {
	d := servertest.Start(t, func(cfg *server.Config) { cfg.Snapshotter = "native" })
	addr := d.Config.GRPC.Address
	run := func(args ...string) string {
		t.Helper()
		out, err := runSnapshots(t, addr, args...)
		if err != nil {
			t.Fatalf("snapshots %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// No --snapshotter: the daemon's default, native here.
	run("prepare", "base-active", "--label", "team=a")
	run("commit", "base", "base-active")
	out := run("prepare", "work", "base", "--target", "/mnt/x")
	if !regexp.MustCompile(`(?m)^mount -t bind \S+ /mnt/x -o \S*bind\S*$`).MatchString(out) {
		t.Errorf("prepare --target should print the mount commands:\n%s", out)
	}
	if got := run("mounts", "/mnt/y", "work"); !strings.HasPrefix(got, "mount -t bind ") || !strings.Contains(got, " /mnt/y -o ") {
		t.Errorf("mounts:\n%s", got)
	}
	run("--snapshotter", "native", "view", "look", "base")

	want := regexp.MustCompile(`^KEY +PARENT +KIND +LABELS\n` +
		`base +Committed +cri-runtime.io/gc.root=\S+\n` +
		`look +base +View +cri-runtime.io/gc.root=\S+\n` +
		`work +base +Active +cri-runtime.io/gc.root=\S+\n$`)
	if out := run("ls"); !want.MatchString(out) {
		t.Errorf("ls:\n%s", out)
	}
	if out := run("ls", "-q", "kind==Active"); out != "work\n" {
		t.Errorf("ls -q kind==Active: %q", out)
	}

	var info infoJSON
	if err := json.Unmarshal([]byte(run("info", "base")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Kind != "Committed" || info.Name != "base" || info.Created.IsZero() {
		t.Errorf("info: %+v", info)
	}
	run("label", "work", "x=1")
	if err := json.Unmarshal([]byte(run("info", "work")), &info); err != nil || info.Labels["x"] != "1" || info.Parent != "base" {
		t.Errorf("info after label: %+v, %v", info, err)
	}

	if out := run("usage"); !regexp.MustCompile(`(?m)^KEY +SIZE +INODES\n(.*\n){3}$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^work +[0-9.]+ (B|KiB|MiB) +[0-9]+$`).MatchString(out) {
		t.Errorf("usage:\n%s", out)
	}

	_, err := runSnapshots(t, addr, "rm", "base")
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("rm of a parent: want FailedPrecondition, got %v", err)
	}
	if out := run("rm", "look", "work", "base"); out != "look\nwork\nbase\n" {
		t.Errorf("rm: %q", out)
	}
	_, err = runSnapshots(t, addr, "--snapshotter", "nope", "ls")
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("ls on an unknown snapshotter: %v", err)
	}
}
