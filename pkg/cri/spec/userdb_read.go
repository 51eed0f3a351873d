package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// ReadUserDB reads /etc/passwd and /etc/group of the container rootfs at
// rootfs. Both are opened through an os.Root on rootfs, so no path or
// symlink in the image reaches outside it. A missing file is an image
// without that file (nil in the UserDB); a file that is not a regular file
// (a FIFO would block the daemon), or larger than MaxUserFileSize, is
// refused with InvalidArgument naming it.
//
// This and the helpers in host.go and devices_host.go are the only
// functions of the package that touch the system.
func ReadUserDB(rootfs string) (*UserDB, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("rootfs %q: %w", rootfs, err)
	}
	defer root.Close()
	db := &UserDB{}
	data, err := readUserFile(root, "etc/passwd")
	if err != nil {
		return nil, err
	}
	if data != nil {
		db.Passwd = ParsePasswd(data)
	}
	if data, err = readUserFile(root, "etc/group"); err != nil {
		return nil, err
	}
	if data != nil {
		db.Group = ParseGroup(data)
	}
	return db, nil
}

// readUserFile returns the content of name in root, nil when it does not
// exist (or a path element is not a directory).
func readUserFile(root *os.Root, name string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO planted by the image must not wait for a
	// writer; it is refused below as not regular.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		// A symlink that leaves the rootfs, or a loop: the image is at
		// fault, not the host.
		return nil, fmt.Errorf("image /%s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image /%s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("image /%s: not a regular file (%s): %w", name, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	if st.Size() > MaxUserFileSize {
		return nil, fmt.Errorf("image /%s: %d bytes, over the limit of %d: %w", name, st.Size(), MaxUserFileSize, errdefs.ErrInvalidArgument)
	}
	// The size can change under us; read one byte more than the limit to
	// notice.
	data, err := io.ReadAll(io.LimitReader(f, MaxUserFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("image /%s: %w", name, err)
	}
	if len(data) > MaxUserFileSize {
		return nil, fmt.Errorf("image /%s: over the limit of %d bytes: %w", name, MaxUserFileSize, errdefs.ErrInvalidArgument)
	}
	return data, nil
}
