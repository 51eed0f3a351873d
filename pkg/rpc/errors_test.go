package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"os"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestRoundTripKeepsClassAndMessage(t *testing.T) {
	for _, c := range classes {
		orig := fmt.Errorf("image %q: %w", "busybox", c.err)
		wire := ToGRPC(orig)
		if got := status.Code(wire); got != c.code {
			t.Errorf("%v: code %v, want %v", c.err, got, c.code)
		}
		back := FromGRPC(wire)
		if !errors.Is(back, c.err) {
			t.Errorf("%v: class lost after round trip: %v", c.err, back)
		}
		if back.Error() != orig.Error() {
			t.Errorf("message changed: %q -> %q", orig, back)
		}
		// A second trip through a proxy does not pile up text.
		again := FromGRPC(ToGRPC(back))
		if again.Error() != orig.Error() || !errors.Is(again, c.err) {
			t.Errorf("second trip: %q (class kept %v)", again, errors.Is(again, c.err))
		}
	}
}

func TestUnclassifiedIsUnknown(t *testing.T) {
	if Code(errors.New("boom")) != codes.Unknown {
		t.Fatal("plain error should map to Unknown")
	}
	if Code(nil) != codes.OK {
		t.Fatal("nil should map to OK")
	}
	if !errdefs.IsUnknown(FromGRPC(status.Error(codes.DataLoss, "x"))) {
		t.Fatal("unmapped gRPC code should come back as Unknown")
	}
}

func TestContextErrors(t *testing.T) {
	err := fmt.Errorf("pull: %w", context.DeadlineExceeded)
	if Code(err) != codes.DeadlineExceeded {
		t.Fatal(Code(err))
	}
	if !errdefs.IsDeadlineExceeded(FromGRPC(ToGRPC(err))) {
		t.Fatal("deadline lost")
	}
}

func TestDiskFullIsResourceExhausted(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := fmt.Errorf("ingest %q: %w", "r", &os.PathError{Op: "write", Path: "/x", Err: errno})
		if !errdefs.IsResourceExhausted(err) {
			t.Errorf("%v: not ResourceExhausted", errno)
		}
		if Code(err) != codes.ResourceExhausted {
			t.Errorf("%v: code %v", errno, Code(err))
		}
		if back := FromGRPC(ToGRPC(err)); !errdefs.IsResourceExhausted(back) {
			t.Errorf("%v: class lost over the wire: %v", errno, back)
		}
	}
	if errdefs.IsResourceExhausted(syscall.EIO) {
		t.Error("EIO is not ResourceExhausted")
	}
}
