// Package fault proves that the runtime loses and leaks nothing when it is
// killed, when its parts fail, under load, and when what it is given is
// hostile (images, registries, files: hostile_*_test.go): the built daemon
// (internal/crinode), driven the way kubelet drives it.
package fault

import (
	"os"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

func TestMain(m *testing.M) { os.Exit(crinode.Main(m)) }
