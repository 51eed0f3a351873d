package cri

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"time"

	"k8s.io/klog/v2"
)

// handlerFeatures are what a runtime handler's OCI runtime can do, asked
// of it once at start (`<runtime> features`, runtime-spec's features
// document); a runtime without the command supports none.
type handlerFeatures struct {
	// RecursiveReadOnlyMounts: "rro" among its mount options, on a kernel
	// with mount_setattr (5.12).
	RecursiveReadOnlyMounts bool
}

// detectFeatures asks each handler's runtime what it supports.
func detectFeatures(ctx context.Context, cfg Config, kernelOK bool) map[string]handlerFeatures {
	out := map[string]handlerFeatures{}
	for _, name := range cfg.handlers() {
		_, bin, _ := cfg.binary(name)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := exec.CommandContext(cctx, bin, "features").Output()
		cancel()
		var doc struct {
			MountOptions []string `json:"mountOptions"`
		}
		if err != nil || json.Unmarshal(b, &doc) != nil {
			klog.FromContext(ctx).V(2).Info("Runtime handler has no features command", "handler", name, "runtime", bin)
			out[name] = handlerFeatures{}
			continue
		}
		out[name] = handlerFeatures{RecursiveReadOnlyMounts: kernelOK && slices.Contains(doc.MountOptions, "rro")}
	}
	return out
}
