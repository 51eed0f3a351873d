package service

import (
	"fmt"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
)

// Config is the [image] section of the daemon's configuration.
type Config struct {
	// ConfigPath is the directory of registry host configurations in the
	// hosts.toml layout of containerd (<config_path>/<host>/hosts.toml,
	// _default). Path; "" for none; default "/etc/cri-runtime/certs.d".
	ConfigPath string `toml:"config_path"`

	// Snapshotter names the snapshotter images are unpacked into, one of
	// the database's. It is not a key of the [image] section: the daemon
	// sets it to its default snapshotter (the top-level "snapshotter",
	// after the overlayfs → native fallback). No default; New refuses "".
	Snapshotter string `toml:"-"`

	// MaxConcurrentDownloads bounds the blobs one pull fetches at once.
	// Count, >= 1; default 3.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`

	// StallTimeout cancels a blob fetch that received no byte for that
	// long; the pull then fails with an Unavailable error naming the blob
	// (Unavailable, not DeadlineExceeded: the registry stopped sending, and
	// a retry may well succeed). Duration string, > 0; default "1m".
	StallTimeout gc.Duration `toml:"stall_timeout"`

	// MaxLayerSize bounds the bytes one layer may expand to once
	// decompressed: the defence against decompression bombs. Bytes, >= 1;
	// default 32 GiB.
	MaxLayerSize int64 `toml:"max_layer_size"`

	// MaxUnpackParallel bounds the layers applied at once, when the
	// snapshotter lets layers be applied independently (overlayfs).
	// Count, >= 1; default 2 (one per core of a small node: applying is
	// CPU-bound by decompression).
	MaxUnpackParallel int `toml:"max_unpack_parallel"`

	// KeepFailedPull is how long what a failed, stopped or killed pull
	// had finished (blobs, partial downloads, unpacked layers) is kept
	// for the next pull of the image to reuse, before the collector may
	// remove it. A running pull holds its lease this long ahead and
	// renews it. Duration string, > 0; default "1h".
	KeepFailedPull gc.Duration `toml:"keep_failed_pull"`

	// FetchRetries is how many times the fetch of one blob is retried
	// after a transient error (a reset connection, a body cut short, a
	// 5xx, 408 or 429, a stall), each retry resuming from the bytes
	// already received, after a backoff that starts at 250ms and doubles
	// up to 5s. Count, >= 0 (0: no retry); default 5.
	FetchRetries int `toml:"fetch_retries"`

	// FetchRetryTime bounds the time one blob may spend retrying, from
	// its first transient error: no retry starts after it. Duration
	// string, > 0; default "2m".
	FetchRetryTime gc.Duration `toml:"fetch_retry_time"`
}

// Defaults of Config.
const (
	DefaultConfigPath             = "/etc/cri-runtime/certs.d"
	DefaultMaxConcurrentDownloads = 3
	DefaultStallTimeout           = time.Minute
	DefaultMaxLayerSize           = 32 << 30
	DefaultMaxUnpackParallel      = 2
	DefaultKeepFailedPull         = time.Hour
	DefaultFetchRetries           = 5
	DefaultFetchRetryTime         = 2 * time.Minute
)

// DefaultConfig returns the configuration documented on each field;
// Snapshotter is left for the caller to set.
func DefaultConfig() Config {
	return Config{
		ConfigPath:             DefaultConfigPath,
		MaxConcurrentDownloads: DefaultMaxConcurrentDownloads,
		StallTimeout:           gc.Duration(DefaultStallTimeout),
		MaxLayerSize:           DefaultMaxLayerSize,
		MaxUnpackParallel:      DefaultMaxUnpackParallel,
		KeepFailedPull:         gc.Duration(DefaultKeepFailedPull),
		FetchRetries:           DefaultFetchRetries,
		FetchRetryTime:         gc.Duration(DefaultFetchRetryTime),
	}
}

// Validate returns an InvalidArgument error naming the first field, by its
// TOML key, whose value is out of range. Snapshotter is checked by New,
// against the database's snapshotters.
func (c Config) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("image config: %s = %v: must be %s: %w", key, v, want, errdefs.ErrInvalidArgument)
	}
	switch {
	case c.MaxConcurrentDownloads < 1:
		return bad("max_concurrent_downloads", c.MaxConcurrentDownloads, ">= 1")
	case c.StallTimeout <= 0:
		return bad("stall_timeout", c.StallTimeout, "> 0")
	case c.MaxLayerSize < 1:
		return bad("max_layer_size", c.MaxLayerSize, ">= 1")
	case c.MaxUnpackParallel < 1:
		return bad("max_unpack_parallel", c.MaxUnpackParallel, ">= 1")
	case c.KeepFailedPull <= 0:
		return bad("keep_failed_pull", c.KeepFailedPull, "> 0")
	case c.FetchRetries < 0:
		return bad("fetch_retries", c.FetchRetries, ">= 0")
	case c.FetchRetryTime <= 0:
		return bad("fetch_retry_time", c.FetchRetryTime, "> 0")
	}
	return nil
}
