package gc

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestDefaultPolicyIsValid(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.PauseThreshold != 0.02 || p.MutationThreshold != 100 || p.DeletionThreshold != 0 ||
		p.ScheduleDelay != 0 || time.Duration(p.StartupDelay) != 100*time.Millisecond {
		t.Fatalf("defaults drifted from their documentation: %+v", p)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Policy)
	}{
		{"pause_threshold", func(p *Policy) { p.PauseThreshold = 0 }},
		{"pause_threshold", func(p *Policy) { p.PauseThreshold = -0.1 }},
		{"pause_threshold", func(p *Policy) { p.PauseThreshold = 1.01 }},
		{"pause_threshold", func(p *Policy) { p.PauseThreshold = math.NaN() }},
		{"deletion_threshold", func(p *Policy) { p.DeletionThreshold = -1 }},
		{"mutation_threshold", func(p *Policy) { p.MutationThreshold = -1 }},
		{"schedule_delay", func(p *Policy) { p.ScheduleDelay = Duration(-time.Millisecond) }},
		{"startup_delay", func(p *Policy) { p.StartupDelay = Duration(-time.Second) }},
	} {
		p := DefaultPolicy()
		tc.edit(&p)
		err := p.Validate()
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: got %v, want InvalidArgument", p, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("error %q does not name %s", err, tc.field)
		}
	}
	// The bounds themselves are allowed.
	p := DefaultPolicy()
	p.PauseThreshold, p.MutationThreshold = 1, 0
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyTOMLRoundTrip(t *testing.T) {
	want := Policy{
		PauseThreshold:    0.5,
		DeletionThreshold: 3,
		MutationThreshold: 7,
		ScheduleDelay:     Duration(1500 * time.Microsecond),
		StartupDelay:      Duration(90 * time.Second),
	}
	b, err := toml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`schedule_delay = '1.5ms'`, `startup_delay = '1m30s'`, `pause_threshold = 0.5`} {
		if !strings.Contains(string(b), line) {
			t.Errorf("marshalled policy lacks %q:\n%s", line, b)
		}
	}
	var got Policy
	if err := toml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
}

func TestPolicyTOMLFromFile(t *testing.T) {
	got := DefaultPolicy()
	doc := "schedule_delay = \"250ms\"\nmutation_threshold = 5\n"
	if err := toml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := DefaultPolicy()
	want.ScheduleDelay, want.MutationThreshold = Duration(250*time.Millisecond), 5
	if got != want {
		t.Fatalf("got %+v, want %+v (keys absent from the file keep their defaults)", got, want)
	}
	if err := toml.Unmarshal([]byte(`startup_delay = "soon"`), &got); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestDurationUnmarshalText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2h3m")); err != nil || time.Duration(d) != 2*time.Hour+3*time.Minute {
		t.Fatalf("got %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("100")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unitless number: got %v, want InvalidArgument", err)
	}
}
