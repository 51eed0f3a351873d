// Package fault holds the end-to-end suites that attack the built daemon
// and break its parts under load, through the CRI as kubelet drives it
// (internal/crinode): hostile images and files (hostile_*_test.go).
package fault

import (
	"os"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

func TestMain(m *testing.M) { os.Exit(crinode.Main(m)) }
