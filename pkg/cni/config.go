package cni

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/duration"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Config is the [cni] section of the daemon's configuration. Start from
// DefaultConfig; the zero value is not valid.
type Config struct {
	// ConfDir is the directory of CNI network configurations (*.conflist,
	// *.conf, *.json). The first MaxConfNum files in lexical order are the
	// pod's networks; the directory is re-read when it changes, without a
	// restart. Absolute path; default "/etc/cni/net.d". It need not exist:
	// until it holds a configuration the network is not ready.
	ConfDir string `toml:"conf_dir"`

	// BinDirs are the directories searched, in order, for plugin binaries.
	// Absolute paths, at least one; default ["/opt/cni/bin",
	// "/usr/lib/cni"] (the upstream location, then Debian's).
	BinDirs []string `toml:"bin_dirs"`

	// NetNSDir is where the pods' network namespaces are pinned (one
	// bind-mounted file each). Absolute path on a filesystem that does not
	// survive a reboot; default "/run/cri-runtime/netns". Created 0700.
	NetNSDir string `toml:"netns_dir"`

	// CacheDir is libcni's cache: the configuration and result of every
	// ADD, which DEL and CHECK read back (the CNI spec requires the same
	// configuration on DEL as on ADD). Absolute path; default
	// "/var/lib/cni", shared with the other runtimes and with cnitool.
	CacheDir string `toml:"cache_dir"`

	// MaxConfNum is how many configuration files, in lexical order, are
	// attached to each pod, as eth0, eth1, ... Count, >= 1; default 1.
	MaxConfNum int `toml:"max_conf_num"`

	// PluginTimeout bounds each execution of a plugin binary (one ADD, DEL,
	// CHECK or STATUS of one plugin of a list). A plugin still running then
	// is killed, with its process group, and the call fails Unavailable.
	// The caller's context bounds the whole call as well. Duration string,
	// > 0; default "1m".
	PluginTimeout Duration `toml:"plugin_timeout"`

	// UseInternalLoopback brings the pod's loopback interface up from the
	// runtime (one ioctl inside the namespace) instead of running the
	// loopback plugin on every ADD and DEL. Boolean; default true.
	UseInternalLoopback bool `toml:"use_internal_loopback"`

	// IPPref orders the pod's IPs, of which the first is the one the CRI
	// reports as the pod IP: "ipv4" (the first IPv4 address first),
	// "ipv6" (the first IPv6 address first) or "cni" (the order the plugin
	// returned). Default "ipv4".
	IPPref string `toml:"ip_pref"`

	// ConfTemplate is a Go text/template file rendered into
	// <conf_dir>/10-cri-runtime-net.conflist when the CRI's
	// UpdateRuntimeConfig gives the node's pod CIDR; "" disables it. The
	// template sees .PodCIDR, .PodCIDRRanges and .Routes, as containerd's
	// conf_template does. Absolute path or ""; default "".
	ConfTemplate string `toml:"conf_template"`
}

// Defaults of Config.
const (
	DefaultConfDir       = "/etc/cni/net.d"
	DefaultNetNSDir      = "/run/cri-runtime/netns"
	DefaultCacheDir      = "/var/lib/cni"
	DefaultMaxConfNum    = 1
	DefaultPluginTimeout = time.Minute
	DefaultIPPref        = "ipv4"
)

// DefaultBinDirs are the plugin directories of DefaultConfig.
func DefaultBinDirs() []string { return []string{"/opt/cni/bin", "/usr/lib/cni"} }

// DefaultConfig returns the configuration documented on each field.
func DefaultConfig() Config {
	return Config{
		ConfDir:             DefaultConfDir,
		BinDirs:             DefaultBinDirs(),
		NetNSDir:            DefaultNetNSDir,
		CacheDir:            DefaultCacheDir,
		MaxConfNum:          DefaultMaxConfNum,
		PluginTimeout:       Duration(DefaultPluginTimeout),
		UseInternalLoopback: true,
		IPPref:              DefaultIPPref,
	}
}

// Validate returns an InvalidArgument error naming the first field, by its
// TOML key, whose value is out of range.
func (c Config) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("cni config: %s = %v: must be %s: %w", key, v, want, errdefs.ErrInvalidArgument)
	}
	abs := func(p string) bool { return p != "" && filepath.IsAbs(p) }
	switch {
	case !abs(c.ConfDir):
		return bad("conf_dir", fmt.Sprintf("%q", c.ConfDir), "an absolute path")
	case len(c.BinDirs) == 0:
		return bad("bin_dirs", c.BinDirs, "at least one directory")
	case !abs(c.NetNSDir):
		return bad("netns_dir", fmt.Sprintf("%q", c.NetNSDir), "an absolute path")
	case !abs(c.CacheDir):
		return bad("cache_dir", fmt.Sprintf("%q", c.CacheDir), "an absolute path")
	case c.MaxConfNum < 1:
		return bad("max_conf_num", c.MaxConfNum, ">= 1")
	case c.PluginTimeout <= 0:
		return bad("plugin_timeout", c.PluginTimeout, "> 0")
	case c.IPPref != "ipv4" && c.IPPref != "ipv6" && c.IPPref != "cni":
		return bad("ip_pref", fmt.Sprintf("%q", c.IPPref), `"ipv4", "ipv6" or "cni"`)
	case c.ConfTemplate != "" && !abs(c.ConfTemplate):
		return bad("conf_template", fmt.Sprintf("%q", c.ConfTemplate), `an absolute path or ""`)
	}
	for _, d := range c.BinDirs {
		if !abs(d) {
			return bad("bin_dirs", fmt.Sprintf("%q", d), "absolute paths")
		}
	}
	return nil
}

// Duration is a time.Duration written in config files as a string such as
// "30s" rather than as a count of nanoseconds.
type Duration = duration.Duration
