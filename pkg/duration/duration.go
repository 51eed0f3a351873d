// Package duration is the one time.Duration of the config files: written
// as a string such as "100ms" or "1m30s", not as a count of nanoseconds.
// It is a leaf, so that every package with a config section can use it.
package duration

import (
	"fmt"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Duration is a time.Duration that a config file writes in
// time.Duration's notation.
type Duration time.Duration

// String returns the duration in time.Duration's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses text with time.ParseDuration; text it cannot parse
// is InvalidArgument.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("duration %q: %w", text, errdefs.ErrInvalidArgument)
	}
	*d = Duration(v)
	return nil
}
