package spec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The real-time signals as the C library numbers them (it keeps 32 and 33).
const (
	sigRTMin = 34
	sigRTMax = 64
)

// signalAliases are the other names of Linux signals.
var signalAliases = map[string]string{"SIGCLD": "SIGCHLD", "SIGPOLL": "SIGIO", "SIGIOT": "SIGABRT"}

// ParseSignal parses a signal as an image's STOPSIGNAL writes it: a name
// with or without SIG ("SIGTERM", "term"), "SIGRTMIN+3", "SIGRTMAX-1", or
// a number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, fmt.Errorf("signal %q: out of range [1, %d]: %w", s, sigRTMax, errdefs.ErrInvalidArgument)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if alias, ok := signalAliases[name]; ok {
		name = alias
	}
	if n := unix.SignalNum(name); n != 0 {
		return n, nil
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN", sigRTMin, 1}, {"SIGRTMAX", sigRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			op := map[int]byte{1: '+', -1: '-'}[rt.sign]
			if rest[0] != op {
				break
			}
			v, err := strconv.Atoi(rest[1:])
			if err != nil || v < 0 {
				break
			}
			off = v
		}
		if n := rt.base + rt.sign*off; n >= sigRTMin && n <= sigRTMax {
			return syscall.Signal(n), nil
		}
	}
	return 0, fmt.Errorf("signal %q: unknown: %w", s, errdefs.ErrInvalidArgument)
}

// StopSignal is the signal that stops the container: the request's
// stop_signal, else the image's STOPSIGNAL, else SIGTERM.
func StopSignal(cfg *runtime.ContainerConfig, image *ocispec.ImageConfig) (syscall.Signal, error) {
	if s := cfg.GetStopSignal(); s != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		name, ok := runtime.Signal_name[int32(s)]
		if !ok {
			return 0, fmt.Errorf("stop_signal %d: unknown: %w", s, errdefs.ErrInvalidArgument)
		}
		name = strings.TrimPrefix(name, "SIGNAL_")
		name = strings.Replace(name, "PLUS", "+", 1)
		name = strings.Replace(name, "MINUS", "-", 1)
		sig, err := ParseSignal(name)
		if err != nil {
			return 0, fmt.Errorf("stop_signal: %w", err)
		}
		return sig, nil
	}
	if image.StopSignal == "" {
		return syscall.SIGTERM, nil
	}
	sig, err := ParseSignal(image.StopSignal)
	if err != nil {
		return 0, fmt.Errorf("image stop signal: %w", err)
	}
	return sig, nil
}
