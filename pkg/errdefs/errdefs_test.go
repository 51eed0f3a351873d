package errdefs

import "testing"

func TestErrorf(t *testing.T) {
	err := Errorf(ErrNotFound, "lease %q", "l1")
	if !IsNotFound(err) || err.Error() != `lease "l1": not found` {
		t.Fatal(err)
	}
}
