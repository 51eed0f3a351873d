package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	imageservice "github.com/cri-runtime/cri-runtime/pkg/image/service"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
)

// Config is the daemon's configuration: one TOML file. Defaults live in
// DefaultConfig; `cri-runtime config default` prints them with the comments
// below.
type Config struct {
	Root        string        `toml:"root" comment:"root is the directory of persistent data: content, snapshots and the metadata database.\nAbsolute path; default \"/var/lib/cri-runtime\". Created 0700."`
	State       string        `toml:"state" comment:"state is the directory of runtime state that does not survive a reboot (sockets).\nAbsolute path; default \"/run/cri-runtime\". Created 0700."`
	Snapshotter string        `toml:"snapshotter" comment:"snapshotter is the default snapshotter, which images are unpacked into: \"overlayfs\" or \"native\".\nWhen overlayfs is not supported by the filesystem under root, native is used instead. Default \"overlayfs\"."`
	GRPC        GRPCConfig    `toml:"grpc" comment:"The management gRPC API, used by the cri-runtime CLI."`
	Metrics     MetricsConfig `toml:"metrics" comment:"Prometheus metrics."`
	Log         LogConfig     `toml:"log" comment:"Logging (klog)."`
	GC          gc.Policy     `toml:"gc" comment:"When the garbage collector runs."`
	// Image is owned by pkg/image/service; its fields carry their own
	// comments. Its Snapshotter is no key: New sets it to the resolved
	// top-level snapshotter.
	Image imageservice.Config `toml:"image" comment:"Pulling and unpacking images (into the top-level snapshotter)."`
}

// GRPCConfig configures the management gRPC listener.
type GRPCConfig struct {
	Address         string      `toml:"address" comment:"address is the unix socket of the management API, created 0600 in a 0700 directory.\nAbsolute path; default \"/run/cri-runtime/cri-runtime-mgmt.sock\"."`
	ShutdownTimeout gc.Duration `toml:"shutdown_timeout" comment:"shutdown_timeout is how long a stop waits for calls in progress before cutting them.\nDuration string such as \"10s\", > 0; default \"10s\"."`
}

// MetricsConfig configures the /metrics HTTP endpoint.
type MetricsConfig struct {
	Address string `toml:"address" comment:"address is the TCP host:port serving /metrics; \"\" disables it. Default \"127.0.0.1:1338\"."`
}

// LogConfig configures logging.
type LogConfig struct {
	Verbosity int `toml:"verbosity" comment:"verbosity is the klog level: 2 logs lifecycle, 4 payloads. Integer >= 0; default 0."`
}

// Defaults of the fields of Config.
const (
	DefaultRoot           = "/var/lib/cri-runtime"
	DefaultState          = "/run/cri-runtime"
	DefaultAddress        = "/run/cri-runtime/cri-runtime-mgmt.sock"
	DefaultMetricsAddress = "127.0.0.1:1338"
	DefaultSnapshotter    = "overlayfs"
)

// gcComments documents the keys of the [gc] section, which gc.Policy owns
// (the text follows the field docs of gc.Policy).
var gcComments = map[string]string{
	"pause_threshold":    "pause_threshold is the largest fraction of wall time a collection may block writers.\nUnitless, in (0, 1]; default 0.02 (20 ms in every second).",
	"deletion_threshold": "deletion_threshold is the number of deleting transactions that schedules a collection.\nCount, >= 0; default 0 (any deletion schedules one).",
	"mutation_threshold": "mutation_threshold is the number of transactions of any kind that schedules a collection.\nCount, >= 0; 0 disables this trigger; default 100.",
	"schedule_delay":     "schedule_delay is how long a collection scheduled by a deletion waits, to batch bursts.\nDuration string, >= 0; default \"0s\".",
	"startup_delay":      "startup_delay is how long after start the first collection runs.\nDuration string, >= 0; default \"100ms\".",
}

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

// Validate checks every field and returns an InvalidArgument error naming
// the first bad one by its TOML key.
func (c Config) Validate() error {
	for _, d := range []struct{ key, path string }{{"root", c.Root}, {"state", c.State}, {"grpc.address", c.GRPC.Address}} {
		if d.path == "" || !filepath.IsAbs(d.path) {
			return fmt.Errorf("%s %q: must be an absolute path: %w", d.key, d.path, errdefs.ErrInvalidArgument)
		}
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
	// Its errors name the key as "image config: <key> = ...".
	return c.Image.Validate()
}

// WriteDefault writes DefaultConfig as a TOML file in which every key is
// preceded by a comment giving its meaning, unit and default.
func WriteDefault(w io.Writer) error {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf).SetIndentTables(false)
	if err := enc.Encode(DefaultConfig()); err != nil {
		return fmt.Errorf("encode default config: %w", err)
	}
	out := bufio.NewWriter(w)
	fmt.Fprintln(out, "# cri-runtime configuration. Every key is optional; shown are the defaults.")
	fmt.Fprintln(out)
	sc := bufio.NewScanner(&buf)
	section := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
		}
		if key, _, ok := strings.Cut(line, " = "); ok && section == "gc" {
			if c, ok := gcComments[key]; ok {
				fmt.Fprintln(out, "# "+strings.ReplaceAll(c, "\n", "\n# "))
			}
		}
		fmt.Fprintln(out, line)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return out.Flush()
}
