package shimapi

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"path/filepath"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// MaxSocketPath is the longest path a unix socket can be bound to
// (sun_path is 108 bytes with the terminating NUL).
const MaxSocketPath = 107

// GroupDir is the directory of the shim of group in namespace ns: its pid
// file, its log and the bundles of its containers.
func GroupDir(stateDir, ns, group string) string {
	return filepath.Join(stateDir, ns, group)
}

// SocketPath is where the shim of group in namespace ns listens. The name
// is a hash of the namespace and group, so its length depends on the state
// directory only, and the daemon finds the shim again from the two names
// alone, without a record of its own. The hash is FNV-1a, 128 bits, not
// SHA-256: the names are the daemon's own (validated identifiers), not an
// adversary's, and crypto/sha256 would link the FIPS module into every
// shim, 75 KiB of private memory per pod for one hash at start.
func SocketPath(stateDir, ns, group string) string {
	h := fnv.New128a()
	h.Write([]byte(ns + "/" + group))
	return filepath.Join(stateDir, "s", hex.EncodeToString(h.Sum(nil)[:12]))
}

// CheckStateDir returns an InvalidArgument error when the sockets under
// stateDir would be too long to bind.
func CheckStateDir(stateDir string) error {
	if p := SocketPath(stateDir, "n", "g"); len(p) > MaxSocketPath {
		return fmt.Errorf("state directory %q: shim socket paths would be %d bytes, longer than %d: %w",
			stateDir, len(p), MaxSocketPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Files in a group directory and in each bundle.
const (
	// PidFile in the group directory holds the shim's pid.
	PidFile = "shim.pid"
	// LogFile in the group directory is the shim's own stderr.
	LogFile = "shim.log"
	// RuntimeFile in a bundle names the OCI runtime binary the container
	// was created with, so that the daemon can clean up after a dead shim.
	RuntimeFile = "runtime"
	// RuntimeRoot in a bundle is the runtime's --root.
	RuntimeRoot = "root"
	// RootfsDir in a bundle is where the rootfs mounts are mounted.
	RootfsDir = "rootfs"
)
