package cni

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"text/template"

	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// TemplateConfFile is the file of the conf dir UpdatePodCIDR writes.
const TemplateConfFile = "10-cri-runtime-net.conflist"

// templateData is what conf_template sees; the names are containerd's, so
// its templates work unchanged.
type templateData struct {
	PodCIDR       string   // the first CIDR
	PodCIDRRanges []string // all of them
	Routes        []string // a default route per family: 0.0.0.0/0, ::/0
}

// UpdatePodCIDR renders conf_template with the node's pod CIDRs (from the
// CRI's UpdateRuntimeConfig) into <conf_dir>/10-cri-runtime-net.conflist,
// atomically; the next call sees the network. Without conf_template, or
// with no CIDR, it does nothing. A CIDR that does not parse is
// InvalidArgument; a template that cannot be read or run is
// FailedPrecondition.
func (n *Network) UpdatePodCIDR(ctx context.Context, cidrs []string) error {
	if n.cfg.ConfTemplate == "" || len(cidrs) == 0 {
		return nil
	}
	data := templateData{PodCIDR: cidrs[0], PodCIDRRanges: cidrs}
	v4, v6 := false, false
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("pod CIDR %q: %w", c, errdefs.ErrInvalidArgument)
		}
		if p.Addr().Is4() && !v4 {
			v4 = true
			data.Routes = append(data.Routes, "0.0.0.0/0")
		} else if p.Addr().Is6() && !v6 {
			v6 = true
			data.Routes = append(data.Routes, "::/0")
		}
	}
	tmpl, err := template.ParseFiles(n.cfg.ConfTemplate)
	if err != nil {
		return fmt.Errorf("conf_template: %w: %w", err, errdefs.ErrFailedPrecondition)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return fmt.Errorf("conf_template %s: %w: %w", n.cfg.ConfTemplate, err, errdefs.ErrFailedPrecondition)
	}
	if err := writeFileAtomic(n.cfg.ConfDir, TemplateConfFile, buf.Bytes()); err != nil {
		return fmt.Errorf("cni conf dir %s: %w", n.cfg.ConfDir, err)
	}
	klog.FromContext(ctx).Info("cni config written from conf_template", "podCIDRs", cidrs,
		"file", filepath.Join(n.cfg.ConfDir, TemplateConfFile))
	return nil
}

// writeFileAtomic writes data as dir/name through a temporary file that
// the conf dir reader ignores (no conf extension), then renames it.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}
