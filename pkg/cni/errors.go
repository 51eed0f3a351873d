package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The error classes of this package, decided once here:
//
//   - InvalidArgument: the caller's arguments (pod ID, netns path, port
//     mappings) and Config.Validate; CNI codes 4 and 8 (bad CNI_ARGS or
//     netns), which only our arguments can cause.
//   - FailedPrecondition: the node is not set up for pods ("network not
//     ready": no configuration, an unreadable one, a plugin binary
//     missing), and CNI codes 1, 2, 6 and 7, by which a plugin refuses its
//     configuration. Fixing the node, not retrying, cures it.
//   - NotFound: CNI code 3 (unknown container), Check of a pod that has no
//     cache entry.
//   - Unavailable: a plugin that ran and failed (IPAM exhausted, netlink
//     busy, its own bug: codes 5, 11, 50, 51, 999 and the plugin-specific
//     ones), or ran past plugin_timeout. Kubelet retries the pod.
//   - context.Canceled / DeadlineExceeded: the caller's ctx ended; the
//     plugin running then was killed.
//   - Internal: the rest (the runtime's own syscalls, results it cannot
//     parse).

// wrapPluginError names the pod and the network in err (libcni already
// names the plugin and the command) and gives it its class.
func wrapPluginError(podID, network string, err error) error {
	err = fmt.Errorf("pod %s: network %q: %w", podID, network, err)
	if class := classOf(err); class != nil {
		return fmt.Errorf("%w: %w", err, class)
	}
	return err
}

// classes lists what counts as an error already classified.
var classes = []error{
	errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists,
	errdefs.ErrFailedPrecondition, errdefs.ErrResourceExhausted, errdefs.ErrUnavailable,
	errdefs.ErrNotImplemented, errdefs.ErrConflict, errdefs.ErrInternal, errdefs.ErrUnknown,
	context.Canceled, context.DeadlineExceeded,
}

// classOf returns the class to add to err, or nil if err has one.
func classOf(err error) error {
	for _, c := range classes {
		if errors.Is(err, c) {
			return nil
		}
	}
	var te *types.Error
	if !errors.As(err, &te) {
		return errdefs.ErrInternal
	}
	switch te.Code {
	case types.ErrIncompatibleCNIVersion, types.ErrUnsupportedField, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
		return errdefs.ErrFailedPrecondition
	case types.ErrUnknownContainer:
		return errdefs.ErrNotFound
	case types.ErrInvalidEnvironmentVariables, types.ErrInvalidNetNS:
		return errdefs.ErrInvalidArgument
	default:
		return errdefs.ErrUnavailable
	}
}
