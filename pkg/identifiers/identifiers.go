// Package identifiers validates the IDs and names of namespaces, containers,
// sandboxes, leases and snapshots' owners.
//
// A valid identifier is made of letters, digits, '.', '_' and '-', starts and
// ends with a letter or digit and is at most MaxLength characters long.
//
// This package imports nothing of the project but errdefs.
package identifiers

import (
	"fmt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// MaxLength is the longest identifier accepted.
const MaxLength = 76

// Validate returns nil when s is a valid identifier and an InvalidArgument
// error that names s and what is wrong with it otherwise.
func Validate(s string) error {
	if s == "" {
		return fmt.Errorf("identifier must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(s) > MaxLength {
		return fmt.Errorf("identifier %q is %d characters, longer than %d: %w", s, len(s), MaxLength, errdefs.ErrInvalidArgument)
	}
	if !alnum(s[0]) {
		return fmt.Errorf("identifier %q must start with a letter or digit: %w", s, errdefs.ErrInvalidArgument)
	}
	if !alnum(s[len(s)-1]) {
		return fmt.Errorf("identifier %q must end with a letter or digit: %w", s, errdefs.ErrInvalidArgument)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !alnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("identifier %q has invalid character %q at position %d (allowed: letters, digits, '.', '_', '-'): %w", s, rune(c), i, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
