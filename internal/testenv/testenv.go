// Package testenv decides what a test does when this machine lacks a part
// it needs (a tool, root, a kernel feature): skip, saying what is missing,
// or, when CRI_RUNTIME_TEST_STRICT is set, fail. hack/test.sh sets it, so
// that CI proves the whole suite on a machine hack/deps.sh prepared rather
// than pass with parts of it skipped in silence.
//
// This package imports only the standard library.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// StrictEnv is the environment variable that turns skips into failures.
const StrictEnv = "CRI_RUNTIME_TEST_STRICT"

// Strict reports whether a missing part fails the test.
func Strict() bool { return os.Getenv(StrictEnv) != "" }

// Missing stops t because this machine lacks what format describes: a skip,
// or a failure under CRI_RUNTIME_TEST_STRICT.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s is set: hack/deps.sh installs what the tests need)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// NeedRoot stops t unless it runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Getuid() != 0 {
		Missing(t, "%s needs root", why)
	}
}
