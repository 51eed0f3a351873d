package cni_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// TestUpdatePodCIDR: with conf_template, the pod CIDR kubelet gives
// makes the network ready, without a restart.
func TestUpdatePodCIDR(t *testing.T) {
	env := cnitest.New(t)
	env.RemoveConf(t)
	ctx := context.Background()
	tmpl := strings.Replace(string(env.ConfList()), `"subnet": "`+env.Subnet.String()+`"`, `"subnet": "{{.PodCIDR}}"`, 1)
	tmpl = strings.Replace(tmpl, `"routes": [{"dst": "0.0.0.0/0"}]`,
		`"routes": [{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst": "{{$r}}"}{{end}}]`, 1)
	cfg := env.Config()
	cfg.ConfTemplate = filepath.Join(t.TempDir(), "template.conflist")
	if err := os.WriteFile(cfg.ConfTemplate, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	n := newNetwork(t, cfg)
	if err := n.Status(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Status before the pod CIDR = %v", err)
	}
	if err := n.UpdatePodCIDR(ctx, []string{"10.88.0.0"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("UpdatePodCIDR of a bad CIDR = %v", err)
	}
	if err := n.UpdatePodCIDR(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.UpdatePodCIDR(ctx, []string{env.Subnet.String()}); err != nil {
		t.Fatal(err)
	}
	if err := n.Status(ctx); err != nil {
		t.Fatalf("Status after the pod CIDR: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(env.ConfDir, cni.TemplateConfFile))
	if !strings.Contains(string(data), `"subnet": "`+env.Subnet.String()+`"`) || !strings.Contains(string(data), `"routes": [{"dst": "0.0.0.0/0"}]`) {
		t.Fatalf("rendered:\n%s", data)
	}
	if entries, _ := os.ReadDir(env.ConfDir); len(entries) != 1 {
		t.Fatalf("conf dir holds %d files, want 1 (no temporary left)", len(entries))
	}
	p := newPod(t, env, "pod-cidr")
	if r := setup(t, n, p); !env.Subnet.Contains(r.IPs[0]) {
		t.Fatalf("IP %s not in %s", r.IPs[0], env.Subnet)
	}
	teardown(t, n, p)

	// A template that does not run is the node's problem.
	if err := os.WriteFile(cfg.ConfTemplate, []byte("{{.Nope}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.UpdatePodCIDR(ctx, []string{env.Subnet.String()}); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("UpdatePodCIDR with a bad template = %v", err)
	}
	// Without a template: nothing written.
	cfg.ConfTemplate = ""
	env.RemoveConf(t)
	if err := newNetwork(t, cfg).UpdatePodCIDR(ctx, []string{env.Subnet.String()}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(env.ConfDir); len(entries) != 0 {
		t.Fatalf("conf dir holds %d files without a template", len(entries))
	}
	env.AssertClean(t)
}
