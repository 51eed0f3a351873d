package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// entryError reports that op on the layer entry name failed with err,
// classified by what the failure says about the layer and the host.
func entryError(name, op string, err error) error {
	return fmt.Errorf("layer entry %q: %s: %w: %w", name, op, err, classify(err))
}

// refused reports an entry that would leave the root or break containment.
func refused(name, why string) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, why, errdefs.ErrInvalidArgument)
}

func classify(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		// os.Root's own refusals (a path that escapes the root) carry no
		// errno, and there is no exported value to test them against.
		return errdefs.ErrInvalidArgument
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.EEXIST, syscall.EISDIR, syscall.ENOTEMPTY,
		syscall.ELOOP, syscall.EINVAL, syscall.EMLINK, syscall.ENAMETOOLONG, syscall.EXDEV:
		// The layer asks for something this tree cannot hold.
		return errdefs.ErrInvalidArgument
	case syscall.EPERM, syscall.EACCES, syscall.EROFS:
		// We lack a privilege the layer needs (mknod, chown, a read-only
		// mount): the host must change, not the layer.
		return errdefs.ErrFailedPrecondition
	case syscall.ENOSPC, syscall.EDQUOT:
		return errdefs.ErrUnavailable
	}
	return errdefs.ErrInternal
}

// rootError reports that the directory a layer goes into cannot be used.
// A missing root is NotFound: the caller named something that is not there.
func rootError(root, op string, err error) error {
	class := classify(err)
	if errors.Is(err, fs.ErrNotExist) {
		class = errdefs.ErrNotFound
	}
	return fmt.Errorf("layer root %q: %s: %w: %w", root, op, err, class)
}
