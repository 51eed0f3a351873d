package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	if !IsUnknown(FromGRPC(status.Error(codes.DataLoss, "x"))) {
		t.Fatal("unmapped gRPC code should come back as Unknown")
	}
}

func TestContextErrors(t *testing.T) {
	err := fmt.Errorf("pull: %w", context.DeadlineExceeded)
	if Code(err) != codes.DeadlineExceeded {
		t.Fatal(Code(err))
	}
	if !IsDeadlineExceeded(FromGRPC(ToGRPC(err))) {
		t.Fatal("deadline lost")
	}
}

func TestErrorf(t *testing.T) {
	err := Errorf(ErrNotFound, "lease %q", "l1")
	if !IsNotFound(err) || err.Error() != `lease "l1": not found` {
		t.Fatal(err)
	}
}
