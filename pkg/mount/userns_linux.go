package mount

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// InUserNS reports whether the process runs in a user namespace other than
// the initial one, whose uid_map maps the whole range onto itself. There,
// overlay needs "userxattr" and whiteouts cannot be device nodes.
func InUserNS() (bool, error) {
	b, err := os.ReadFile("/proc/self/uid_map")
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // no user namespaces in this kernel
	}
	if err != nil {
		return false, fmt.Errorf("user namespace check: %w", err)
	}
	fields := strings.Fields(string(bytes.TrimSpace(b)))
	initial := len(fields) == 3 && fields[0] == "0" && fields[1] == "0" && fields[2] == "4294967295"
	return !initial, nil
}
