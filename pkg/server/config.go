package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cri"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
)

// Config is the daemon's configuration: one TOML file. Defaults live in
// DefaultConfig.
//
// The doc comment of each field (its first paragraph) is the one source of
// its documentation: it gives the meaning, the unit and the default, and
// `cri-runtime config default` prints it above the key, with Go names
// written as TOML keys. After changing one, run `go generate ./pkg/server`;
// a test fails while configdoc_gen.go is out of date.
//
//go:generate go run ./internal/configdoc/configdocgen
type Config struct {
	// Root is the directory of persistent data: content, snapshots and the
	// metadata database. Absolute path; default "/var/lib/cri-runtime".
	// Created 0700, else tightened to 0700; one owned by another user is
	// refused. The daemon holds an exclusive lock on Root/lock.
	Root string `toml:"root"`

	// State is the directory of runtime state that does not survive a
	// reboot (sockets). Absolute path; default "/run/cri-runtime". Created,
	// checked and locked as Root is.
	State string `toml:"state"`

	// Snapshotter is the default snapshotter, which images are unpacked
	// into: "overlayfs" or "native". When overlayfs is not supported by the
	// filesystem under Root, native is used instead. Default "overlayfs".
	Snapshotter string `toml:"snapshotter"`

	// ShimBinary is the shim started for each pod sandbox (and each group
	// of containers of the CLI). Path; default "": cri-runtime-shim next to
	// the daemon's executable, else in PATH.
	ShimBinary string `toml:"shim_binary"`

	// GRPC is the management gRPC API, used by the cri-runtime CLI.
	GRPC GRPCConfig `toml:"grpc"`

	// Metrics is the HTTP endpoint of Prometheus metrics and of the health
	// check.
	Metrics MetricsConfig `toml:"metrics"`

	// Log is logging (klog, to stderr).
	Log LogConfig `toml:"log"`

	// GC decides when the garbage collector runs.
	GC gc.Policy `toml:"gc"`

	// CRI is the CRI socket kubelet talks to, and how pods and containers
	// are made.
	CRI cri.Config `toml:"cri"`

	// CNI is pod networking: the network configurations and their plugins.
	CNI cni.Config `toml:"cni"`

	// Image is pulling and unpacking images (into the top-level
	// snapshotter).
	//
	// It is owned by pkg/image/service. Its Snapshotter is no key: New
	// sets it to the resolved top-level snapshotter.
	Image imageservice.Config `toml:"image"`
}

// GRPCConfig configures the management gRPC listener.
type GRPCConfig struct {
	// Address is the unix socket of the management API, created 0600 in a
	// 0700 directory. Absolute path of at most 107 bytes (the limit of a
	// unix socket address); default "/run/cri-runtime/cri-runtime-mgmt.sock".
	Address string `toml:"address"`

	// ShutdownTimeout is how long a stop waits for the unary calls in
	// progress before cutting them; streaming calls (ingests, reads, event
	// subscriptions) are ended at once. Duration string such as "10s", > 0;
	// default "10s".
	ShutdownTimeout gc.Duration `toml:"shutdown_timeout"`
}

// MetricsConfig configures the HTTP endpoint of /metrics and /healthz.
type MetricsConfig struct {
	// Address is the TCP host:port serving /metrics and /healthz; ""
	// disables both. Default "127.0.0.1:1338".
	Address string `toml:"address"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Verbosity is the klog level: 2 logs lifecycle, 4 payloads. Integer
	// >= 0; default 0.
	Verbosity int `toml:"verbosity"`
}

// MaxSocketPath is the longest path a unix socket can be bound to: the
// 108 bytes of sockaddr_un's sun_path, less its terminating NUL.
const MaxSocketPath = 107

// Defaults of the fields of Config.
const (
	DefaultRoot           = "/var/lib/cri-runtime"
	DefaultState          = "/run/cri-runtime"
	DefaultAddress        = "/run/cri-runtime/cri-runtime-mgmt.sock"
	DefaultMetricsAddress = "127.0.0.1:1338"
	DefaultSnapshotter    = "overlayfs"
)

// DefaultConfig returns the configuration documented on each field.
func DefaultConfig() Config {
	return Config{
		Root:        DefaultRoot,
		State:       DefaultState,
		Snapshotter: DefaultSnapshotter,
		GRPC: GRPCConfig{
			Address:         DefaultAddress,
			ShutdownTimeout: gc.Duration(10 * time.Second),
		},
		Metrics: MetricsConfig{Address: DefaultMetricsAddress},
		GC:      gc.DefaultPolicy(),
		Image:   imageservice.DefaultConfig(),
		CRI:     cri.DefaultConfig(),
		CNI:     cni.DefaultConfig(),
	}
}

// LoadConfig reads the TOML file at path over DefaultConfig and validates
// the result. Keys the file does not know are an InvalidArgument error that
// names them.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("config %q: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return cfg, fmt.Errorf("config %q: %w", path, err)
	}
	if err := decodeConfig(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %q: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %q: %w", path, err)
	}
	return cfg, nil
}

// decodeConfig decodes data over cfg, rejecting unknown keys.
func decodeConfig(data []byte, cfg *Config) error {
	// A file that does not parse is reported by the decoder, with its
	// position.
	var tree map[string]any
	if toml.Unmarshal(data, &tree) == nil {
		if err := checkTextFields(tree, reflect.TypeOf(*cfg), ""); err != nil {
			return err
		}
	}
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(cfg)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return fmt.Errorf("unknown key %s: %w", strings.Join(keys, ", "), errdefs.ErrInvalidArgument)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		where := fmt.Sprintf("line %d column %d", row, col)
		if len(de.Key()) > 0 {
			where = fmt.Sprintf("key %q (line %d)", strings.Join(de.Key(), "."), row)
		}
		return fmt.Errorf("%s: %s: %w", where, strings.TrimPrefix(de.Error(), "toml: "), errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", err.Error(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkTextFields refuses a key of tree that decodes into a field of t
// written as text (a gc.Duration) but is not a string: the decoder takes a
// bare integer for a count of nanoseconds, so that `shutdown_timeout = 10`
// meant 10ns.
func checkTextFields(tree map[string]any, t reflect.Type, prefix string) error {
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		v, ok := tree[key]
		if !ok || key == "" || key == "-" {
			continue
		}
		_, isText := reflect.PointerTo(f.Type).MethodByName("UnmarshalText")
		switch {
		case isText:
			if _, ok := v.(string); ok {
				continue
			}
			if f.Type == reflect.TypeOf(gc.Duration(0)) {
				return fmt.Errorf("key %q = %v: a duration is a string with a unit, such as \"10s\" or \"1m30s\": %w",
					prefix+key, v, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("key %q = %v: must be a string: %w", prefix+key, v, errdefs.ErrInvalidArgument)
		case f.Type.Kind() == reflect.Struct:
			if sub, ok := v.(map[string]any); ok {
				if err := checkTextFields(sub, f.Type, prefix+key+"."); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Validate checks every field and returns an InvalidArgument error naming
// the first bad one by its TOML key.
func (c Config) Validate() error {
	for _, d := range []struct{ key, path string }{{"root", c.Root}, {"state", c.State}, {"grpc.address", c.GRPC.Address}} {
		if d.path == "" || !filepath.IsAbs(d.path) {
			return fmt.Errorf("%s %q: must be an absolute path: %w", d.key, d.path, errdefs.ErrInvalidArgument)
		}
	}
	if n := len(c.GRPC.Address); n > MaxSocketPath {
		return fmt.Errorf("grpc.address %q: %d bytes, over the %d of a unix socket address: %w", c.GRPC.Address, n, MaxSocketPath, errdefs.ErrInvalidArgument)
	}
	switch c.Snapshotter {
	case "overlayfs", "native":
	default:
		return fmt.Errorf("snapshotter %q: must be \"overlayfs\" or \"native\": %w", c.Snapshotter, errdefs.ErrInvalidArgument)
	}
	if c.GRPC.ShutdownTimeout <= 0 {
		return fmt.Errorf("grpc.shutdown_timeout %v: must be positive: %w", c.GRPC.ShutdownTimeout, errdefs.ErrInvalidArgument)
	}
	if c.Metrics.Address != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
			return fmt.Errorf("metrics.address %q: must be host:port or empty: %w", c.Metrics.Address, errdefs.ErrInvalidArgument)
		}
	}
	if c.Log.Verbosity < 0 {
		return fmt.Errorf("log.verbosity %d: must not be negative: %w", c.Log.Verbosity, errdefs.ErrInvalidArgument)
	}
	if err := c.GC.Validate(); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if err := c.CRI.Validate(); err != nil {
		return err
	}
	if err := c.CNI.Validate(); err != nil {
		return fmt.Errorf("cni: %w", err)
	}
	// Its errors name the key as "image config: <key> = ...".
	return c.Image.Validate()
}

// WriteDefault writes DefaultConfig as a TOML file in which every key is
// preceded by its documentation (configDocs): meaning, unit and default.
func WriteDefault(w io.Writer) error {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf).SetIndentTables(false)
	if err := enc.Encode(DefaultConfig()); err != nil {
		return fmt.Errorf("encode default config: %w", err)
	}
	out := bufio.NewWriter(w)
	fmt.Fprintln(out, "# cri-runtime configuration. Every key is optional; shown are the defaults.")
	fmt.Fprintln(out, "# Durations are strings with a unit (\"10s\", \"1m30s\"); a bare number is refused.")
	fmt.Fprintln(out)
	sc := bufio.NewScanner(&buf)
	section := ""
	for sc.Scan() {
		line := sc.Text()
		switch key, _, isKey := strings.Cut(line, " = "); {
		case strings.HasPrefix(line, "#"):
			continue // a struct tag's comment: the docs are configDocs
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[] ")
			writeComment(out, configDoc(section))
		case isKey && section != "":
			writeComment(out, configDoc(section+"."+key))
		case isKey:
			writeComment(out, configDoc(key))
		}
		fmt.Fprintln(out, line)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return out.Flush()
}

// configDoc returns the documentation of the dotted key, matching "*" in
// the documented keys to one component (the entries of a table of tables).
func configDoc(key string) string {
	if doc, ok := configDocs[key]; ok {
		return doc
	}
	for pattern, doc := range configDocs {
		if ok, _ := path.Match(strings.ReplaceAll(pattern, ".", "/"), strings.ReplaceAll(key, ".", "/")); ok && strings.Contains(pattern, "*") {
			return doc
		}
	}
	return ""
}

func writeComment(w io.Writer, doc string) {
	if doc != "" {
		fmt.Fprintln(w, "# "+strings.ReplaceAll(doc, "\n", "\n# "))
	}
}
