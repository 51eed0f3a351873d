// Command cri-runtime-shim is the shim process of cri-runtime: the daemon
// starts one per sandbox group, and it keeps that group's containers
// running while the daemon restarts. See pkg/task/doc.go.
//
//	cri-runtime-shim -state DIR -namespace NS -group ID
//
// It reports readiness on file descriptor 3 when the daemon passes one:
// "ok" once its socket listens, or the error that stopped it.
package main

import (
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/task/shim"
)

func main() {
	var cfg shim.Config
	flag.StringVar(&cfg.StateDir, "state", "", "the daemon's task state directory (absolute)")
	flag.StringVar(&cfg.Namespace, "namespace", "", "the namespace of the group")
	flag.StringVar(&cfg.Group, "group", "", "the sandbox group this shim holds")
	flag.Parse()

	var ready *os.File
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
		ready = os.NewFile(3, "ready")
	}
	if err := shim.Run(cfg, ready); err != nil {
		fmt.Fprintln(os.Stderr, "cri-runtime-shim:", err)
		os.Exit(1)
	}
}
