package cni

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/utils"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The conf dir is not watched with inotify: every call that needs the
// networks first takes a fingerprint of the directory (one readdir, one
// stat per configuration file and per plugin binary of the networks in
// use: a few microseconds) and reloads when it differs from the last one.
// So a change is seen by the very next call, with no goroutine to own or
// stop and no event to miss when the directory itself is created, replaced
// or mounted after the daemon started (a CNI DaemonSet writing its conf
// late is the usual case), or when a missing plugin binary is installed.

// confExts are the extensions of the files of the conf dir that are
// network configurations, as containerd and CRI-O read them.
var confExts = []string{".conflist", ".conf", ".json"}

// network is one network a pod is attached to: a conf list and the
// interface name it gets inside the pod.
type network struct {
	list   *libcni.NetworkConfigList
	file   string // the file it was read from; "" for the built-in loopback
	ifName string
	// loopback marks the built-in network that runs the loopback plugin
	// when use_internal_loopback is off. It is not in Result.
	loopback bool
}

// loopbackName is the name of the built-in loopback network, containerd's.
const loopbackName = "cni-loopback"

// newLoopback returns the built-in loopback network, added before the
// others when use_internal_loopback is off.
func newLoopback() *network {
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"0.3.1","name":"` + loopbackName +
		`","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		panic(err) // a constant
	}
	return &network{list: list, ifName: "lo", loopback: true}
}

// loaded is what one reading of the conf dir gave. It is never modified
// once built; calls in flight keep using the one they started with.
type loaded struct {
	confFP   uint64     // fingerprint of the conf dir
	binFP    uint64     // fingerprint of the plugin binaries of networks
	plugins  []string   // plugin types of networks, for binFP
	networks []*network // eth0, eth1, ...; empty when err is set
	err      error      // why the network is not ready (FailedPrecondition)
}

// networks returns the pod networks of the conf dir as it is now, reloaded
// if it changed since the last call, or the FailedPrecondition error that
// says why there are none ("network not ready: ...").
func (n *Network) networks(ctx context.Context) ([]*network, error) {
	l, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	return l.networks, l.err
}

func (n *Network) current(ctx context.Context) (*loaded, error) {
	select {
	case n.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("cni conf dir %s: %w", n.cfg.ConfDir, ctx.Err())
	}
	defer func() { <-n.lock }()
	confFP, files, readErr := confFingerprint(n.cfg.ConfDir)
	if cur := n.cur; cur != nil && cur.confFP == confFP && binFingerprint(cur.plugins, n.cfg.BinDirs) == cur.binFP {
		return cur, nil
	}
	l := n.load(confFP, files, readErr)
	log := klog.FromContext(ctx)
	switch {
	case l.err == nil:
		log.Info("cni networks loaded", "networks", describe(l.networks))
	case n.cur == nil || n.cur.err == nil || n.cur.err.Error() != l.err.Error():
		log.Info("cni network not ready", "reason", l.err.Error())
	}
	n.cur = l
	return l, nil
}

// load reads the first max_conf_num configuration files and checks that
// their plugins are installed.
func (n *Network) load(confFP uint64, files []string, readErr error) *loaded {
	l := &loaded{confFP: confFP}
	fail := func(err error) *loaded {
		l.err = fmt.Errorf("network not ready: %w: %w", err, errdefs.ErrFailedPrecondition)
		l.networks = nil
		l.binFP = binFingerprint(l.plugins, n.cfg.BinDirs)
		return l
	}
	if readErr != nil && !errors.Is(readErr, os.ErrNotExist) {
		return fail(fmt.Errorf("cni conf dir %s: %w", n.cfg.ConfDir, readErr))
	}
	if len(files) == 0 {
		return fail(fmt.Errorf("no network config found in %s", n.cfg.ConfDir))
	}
	if !n.cfg.UseInternalLoopback {
		l.networks = append(l.networks, newLoopback())
		l.plugins = append(l.plugins, "loopback")
	}
	for i, file := range files {
		if i == n.cfg.MaxConfNum {
			break
		}
		list, err := readConfList(file)
		if err != nil {
			return fail(err)
		}
		for _, p := range list.Plugins {
			l.plugins = append(l.plugins, p.Network.Type)
		}
		l.networks = append(l.networks, &network{list: list, file: file, ifName: fmt.Sprintf("eth%d", i)})
	}
	for _, nw := range l.networks {
		for _, p := range nw.list.Plugins {
			if _, err := invoke.FindInPath(p.Network.Type, n.cfg.BinDirs); err != nil {
				where := "cni config " + nw.file
				if nw.loopback {
					where = "use_internal_loopback = false"
				}
				return fail(fmt.Errorf("%s: plugin %q not found in %s",
					where, p.Network.Type, strings.Join(n.cfg.BinDirs, ":")))
			}
		}
	}
	l.binFP = binFingerprint(l.plugins, n.cfg.BinDirs)
	return l
}

// readConfList reads one configuration file: a conf list, or a single
// plugin's conf made into a list of one.
func readConfList(file string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	var err error
	if strings.HasSuffix(file, ".conflist") {
		list, err = libcni.ConfListFromFile(file)
	} else {
		var conf *libcni.PluginConfig
		// A conf list in a .conf file fails here: it has no "type".
		conf, err = libcni.ConfFromFile(file)
		if err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cni config %s: %w", file, err)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("cni config %s: no plugins", file)
	}
	if e := utils.ValidateNetworkName(list.Name); e != nil {
		return nil, fmt.Errorf("cni config %s: network name %q: %w", file, list.Name, e)
	}
	for _, p := range list.Plugins {
		if p.Network.Type == "" {
			return nil, fmt.Errorf("cni config %s: a plugin has no \"type\"", file)
		}
	}
	return list, nil
}

// confFingerprint returns a hash of the names, inodes, sizes and change
// times of the configuration files of dir, and the files in lexical
// order. ctime is in it so that a rewrite that keeps the size and sets
// the mtime back is still seen.
func confFingerprint(dir string) (uint64, []string, error) {
	h := fnv.New64a()
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		fmt.Fprintf(h, "error %v", err)
		return h.Sum64(), nil, err
	}
	var files []string
	for _, e := range entries {
		if !hasConfExt(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path) // follows symlinks (ConfigMap volumes use them)
		if err != nil || fi.IsDir() {
			continue
		}
		files = append(files, path)
		fmt.Fprintf(h, "%s\x00%s\x00", e.Name(), statKey(fi))
	}
	return h.Sum64(), files, nil
}

// binFingerprint returns a hash of where each plugin is found in binDirs
// and of that file's identity, so that installing, upgrading or removing
// a plugin causes a reload.
func binFingerprint(plugins, binDirs []string) uint64 {
	h := fnv.New64a()
	for _, p := range plugins {
		fmt.Fprintf(h, "%s\x00", p)
		for _, d := range binDirs {
			if fi, err := os.Stat(filepath.Join(d, p)); err == nil && fi.Mode().IsRegular() {
				fmt.Fprintf(h, "%s\x00%s", d, statKey(fi))
				break
			}
		}
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func statKey(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d:%d.%d:%d.%d", st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
}

func hasConfExt(name string) bool {
	ext := filepath.Ext(name)
	for _, e := range confExts {
		if ext == e {
			return true
		}
	}
	return false
}

func describe(nets []*network) []string {
	out := make([]string, 0, len(nets))
	for _, nw := range nets {
		out = append(out, fmt.Sprintf("%s=%s (%s)", nw.ifName, nw.list.Name, nw.file))
	}
	return out
}
