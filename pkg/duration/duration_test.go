package duration

import (
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestRoundTrip(t *testing.T) {
	for _, text := range []string{"100ms", "1m30s", "0s", "-1s"} {
		var d Duration
		if err := d.UnmarshalText([]byte(text)); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", text, err)
		}
		want, _ := time.ParseDuration(text)
		if time.Duration(d) != want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", text, time.Duration(d), want)
		}
		out, err := d.MarshalText()
		if err != nil || string(out) != want.String() {
			t.Errorf("MarshalText of %q = %q, %v; want %q", text, out, err, want.String())
		}
	}
}

func TestBadTextIsInvalidArgument(t *testing.T) {
	for _, text := range []string{"", "100", "ten seconds", "1x"} {
		d := Duration(time.Second)
		err := d.UnmarshalText([]byte(text))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("UnmarshalText(%q) = %v, want InvalidArgument", text, err)
		}
		if d != Duration(time.Second) {
			t.Errorf("UnmarshalText(%q) changed the value to %v", text, d)
		}
	}
}
