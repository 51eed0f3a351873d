package cni

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Network attaches pods to the CNI networks of the conf dir. It is safe
// for concurrent use: calls for different pods run in parallel (libcni
// serialises nothing; host-local IPAM locks its own data dir), and no call
// holds a lock while a plugin runs. Calls for one pod must not overlap:
// the caller (pkg/sandbox) serialises each pod's lifecycle.
type Network struct {
	cfg  Config
	cni  *libcni.CNIConfig
	exec *pluginExec

	// lock is a mutex that a waiter can give up on with its ctx; it
	// guards cur and the reloads that replace it.
	lock chan struct{}
	cur  *loaded
}

// New returns a Network for cfg, which it validates. It reads nothing
// yet: the conf dir is read by the first call that needs it.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.BinDirs = slices.Clone(cfg.BinDirs)
	ex := &pluginExec{timeout: time.Duration(cfg.PluginTimeout)}
	return &Network{
		cfg:  cfg,
		cni:  libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, ex),
		exec: ex,
		lock: make(chan struct{}, 1),
	}, nil
}

// Config returns the configuration the Network was built with.
func (n *Network) Config() Config { return n.cfg }

// Status returns nil when pods can be attached, else a FailedPrecondition
// error whose text is the reason ("network not ready: no network config
// found in /etc/cni/net.d"), which the CRI's Status reports as
// NetworkReady=false. Networks of CNI version 1.1.0 or later are also
// asked with the STATUS command.
func (n *Network) Status(ctx context.Context) error {
	nets, err := n.networks(ctx)
	if err != nil {
		return err
	}
	for _, nw := range nets {
		if err := n.cni.GetStatusNetworkList(ctx, nw.list); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("network %q status: %w", nw.list.Name, ctx.Err())
			}
			return fmt.Errorf("network not ready: network %q: %w: %w", nw.list.Name, err, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// Networks returns the names of the networks a pod set up now would be
// attached to, in order, with their interface names ("eth0=mynet"), or
// the error of Status.
func (n *Network) Networks(ctx context.Context) ([]string, error) {
	nets, err := n.networks(ctx)
	if err != nil {
		return nil, err
	}
	return describe(nets), nil
}

// Setup attaches the pod podID, whose network namespace is pinned at
// netnsPath (NewNetNS), to every network: CNI ADD of each conf list, with
// the pod's CNI_ARGS and capability arguments from opts. It returns the
// pod's IPs, interfaces, routes and DNS for the caller to keep.
//
// On error nothing stays attached: the networks already added are deleted
// again under a fresh bounded context. Errors: InvalidArgument for bad
// arguments; AlreadyExists when the pod is attached already (libcni's
// cache has it: Teardown first); FailedPrecondition when the network is not ready (no or bad
// config, a plugin missing) or a plugin refuses its configuration;
// Unavailable when a plugin fails or runs past plugin_timeout; the ctx's
// error when ctx ends first (the plugin running then is killed); Internal
// for the rest. The message names the pod, the network and the plugin.
func (n *Network) Setup(ctx context.Context, podID, netnsPath string, opts PodOptions) (*Result, error) {
	if err := validatePod(podID, netnsPath, opts, true); err != nil {
		return nil, err
	}
	if !IsNetNS(netnsPath) {
		return nil, fmt.Errorf("pod %s: netns %s: not a network namespace: %w", podID, netnsPath, errdefs.ErrInvalidArgument)
	}
	nets, err := n.networks(ctx)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", podID, err)
	}
	// A second ADD would fail on the existing eth0, and undoing it would
	// tear down the first: refuse before touching anything.
	if atts, _ := n.cni.GetCachedAttachments(podID); len(atts) > 0 {
		return nil, fmt.Errorf("pod %s: already attached to network %q: tear it down first: %w",
			podID, atts[0].Network, errdefs.ErrAlreadyExists)
	}
	if n.cfg.UseInternalLoopback {
		if err := WithNetNS(netnsPath, loopbackUp); err != nil {
			return nil, fmt.Errorf("pod %s: %w: %w", podID, err, errdefs.ErrInternal)
		}
	}
	start := time.Now()
	res := &Result{}
	for i, nw := range nets {
		r, err := n.cni.AddNetworkList(ctx, nw.list, runtimeConf(podID, netnsPath, nw.ifName, opts))
		if err == nil && !nw.loopback {
			var a Attachment
			if a, err = toAttachment(nw, r); err == nil {
				res.Attachments = append(res.Attachments, a)
			}
		}
		if err != nil {
			err = wrapPluginError(podID, nw.list.Name, err)
			n.undoSetup(ctx, podID, netnsPath, opts, nets[:i+1])
			return nil, err
		}
	}
	res.IPs = podIPs(res.Attachments, n.cfg.IPPref)
	klog.FromContext(ctx).V(2).Info("pod network set up", "sandbox", podID, "ips", res.IPs, "duration", time.Since(start))
	return res, nil
}

// undoSetup deletes nets, last first, after a failed Setup. It runs under
// a fresh context (the caller's may be what ended the ADD), bounded by
// plugin_timeout for each plugin, and only logs its errors.
func (n *Network) undoSetup(ctx context.Context, podID, netnsPath string, opts PodOptions, nets []*network) {
	plugins := 0
	for _, nw := range nets {
		plugins += len(nw.list.Plugins)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(n.cfg.PluginTimeout)*time.Duration(plugins))
	defer cancel()
	for _, nw := range slices.Backward(nets) {
		if err := n.cni.DelNetworkList(ctx, nw.list, runtimeConf(podID, netnsPath, nw.ifName, opts)); err != nil {
			klog.FromContext(ctx).Error(err, "pod network: delete after a failed add", "sandbox", podID, "network", nw.list.Name)
		}
	}
}

// Teardown detaches the pod from its networks: CNI DEL of each network it
// was added to, with the configuration and arguments of that ADD as
// libcni's cache recorded them, so that a configuration changed or removed
// since still releases what the ADD took. Without a cache entry (the ADD
// never finished, or the cache was lost) it deletes the networks of the
// current configuration with opts.
//
// A pod must always be removable, so Teardown is idempotent and tolerant:
// a netns that is gone is passed to the plugins as "" (they then release
// IPs and host rules only); no cache entry and no usable configuration
// means there is nothing it can run, which it logs and returns nil. It
// fails only when a DEL that should release something fails (a plugin
// error, a plugin binary missing): the caller retries later. It does not
// remove the netns (RemoveNetNS does).
func (n *Network) Teardown(ctx context.Context, podID, netnsPath string, opts PodOptions) error {
	if err := validatePod(podID, netnsPath, opts, false); err != nil {
		return err
	}
	if !IsNetNS(netnsPath) {
		netnsPath = ""
	}
	log := klog.FromContext(ctx)
	atts, err := n.cni.GetCachedAttachments(podID)
	if err != nil {
		log.Error(err, "pod network: cni cache unreadable, deleting with the current config", "sandbox", podID)
	}
	if len(atts) > 0 {
		sortForDelete(atts)
		for _, att := range atts {
			list, err := libcni.ConfListFromBytes(att.Config)
			if err != nil {
				log.Error(err, "pod network: cached config unreadable, skipped", "sandbox", podID, "network", att.Network)
				continue
			}
			rt := &libcni.RuntimeConf{ContainerID: podID, NetNS: netnsPath, IfName: att.IfName,
				Args: att.CniArgs, CapabilityArgs: att.CapabilityArgs}
			if err := n.cni.DelNetworkList(ctx, list, rt); err != nil {
				return wrapPluginError(podID, att.Network, err)
			}
		}
		log.V(2).Info("pod network torn down", "sandbox", podID, "from", "cache")
		return nil
	}
	nets, err := n.networks(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pod %s: %w", podID, err)
		}
		log.Info("pod network: nothing to tear down with", "sandbox", podID, "reason", err.Error())
		return nil
	}
	for _, nw := range slices.Backward(nets) {
		if err := n.cni.DelNetworkList(ctx, nw.list, runtimeConf(podID, netnsPath, nw.ifName, opts)); err != nil {
			return wrapPluginError(podID, nw.list.Name, err)
		}
	}
	log.V(2).Info("pod network torn down", "sandbox", podID, "from", "config")
	return nil
}

// Check runs CNI CHECK for each network the pod was added to, with the
// cached configuration of its ADD: nil when the plugins find the pod's
// networking as they left it. A pod with no cache entry is NotFound; a
// configuration older than CNI 0.4.0 has no CHECK (NotImplemented).
func (n *Network) Check(ctx context.Context, podID, netnsPath string) error {
	if err := validatePod(podID, netnsPath, PodOptions{}, true); err != nil {
		return err
	}
	if !IsNetNS(netnsPath) {
		return fmt.Errorf("pod %s: netns %s: not a network namespace: %w", podID, netnsPath, errdefs.ErrInvalidArgument)
	}
	atts, err := n.cni.GetCachedAttachments(podID)
	if err != nil {
		return fmt.Errorf("pod %s: cni cache: %w: %w", podID, err, errdefs.ErrInternal)
	}
	checked := 0
	for _, att := range atts {
		if att.Network == loopbackName {
			continue // CNI 0.3.1: no CHECK
		}
		list, err := libcni.ConfListFromBytes(att.Config)
		if err != nil {
			return fmt.Errorf("pod %s: network %q: cached config: %w: %w", podID, att.Network, err, errdefs.ErrInternal)
		}
		rt := &libcni.RuntimeConf{ContainerID: podID, NetNS: netnsPath, IfName: att.IfName,
			Args: att.CniArgs, CapabilityArgs: att.CapabilityArgs}
		if err := n.cni.CheckNetworkList(ctx, list, rt); err != nil {
			if errors.Is(err, libcni.ErrorCheckNotSupp) {
				return fmt.Errorf("pod %s: network %q: %w: %w", podID, att.Network, err, errdefs.ErrNotImplemented)
			}
			return wrapPluginError(podID, att.Network, err)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("pod %s: no network attachment in the cni cache: %w", podID, errdefs.ErrNotFound)
	}
	return nil
}

// sortForDelete orders cached attachments for DEL: the reverse of the ADD
// order (eth1 before eth0), the loopback last.
func sortForDelete(atts []*libcni.NetworkAttachment) {
	slices.SortFunc(atts, func(a, b *libcni.NetworkAttachment) int {
		if (a.IfName == "lo") != (b.IfName == "lo") {
			if a.IfName == "lo" {
				return 1
			}
			return -1
		}
		if len(a.IfName) != len(b.IfName) { // eth10 after eth9
			return len(b.IfName) - len(a.IfName)
		}
		return strings.Compare(b.IfName, a.IfName)
	})
}
