package testsuite

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

func testStatUpdateLabels(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	if _, err := sn.Prepare(ctx, "a", "", snapshot.WithLabels(map[string]string{"x": "1", "y": "2"})); err != nil {
		t.Fatal(err)
	}
	info, err := sn.Stat(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(info.Labels, map[string]string{"x": "1", "y": "2"}) {
		t.Fatalf("labels at prepare: %v", info.Labels)
	}
	if info.Created.IsZero() || info.Updated.Before(info.Created) {
		t.Fatalf("times: created %v, updated %v", info.Created, info.Updated)
	}
	created := info.Created

	steps := []struct {
		labels map[string]string
		paths  []string
		want   map[string]string
	}{
		{map[string]string{"x": "10", "z": "3"}, []string{"labels.x"}, map[string]string{"x": "10", "y": "2"}},
		{map[string]string{}, []string{"labels.y"}, map[string]string{"x": "10"}},
		{map[string]string{"k": "v"}, []string{"labels"}, map[string]string{"k": "v"}},
		{map[string]string{"only": "this"}, nil, map[string]string{"only": "this"}},
	}
	for i, s := range steps {
		got, err := sn.Update(ctx, snapshot.Info{Name: "a", Labels: s.labels}, s.paths...)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !maps.Equal(got.Labels, s.want) {
			t.Fatalf("step %d: update returned %v, want %v", i, got.Labels, s.want)
		}
		info, err := sn.Stat(ctx, "a")
		if err != nil || !maps.Equal(info.Labels, s.want) {
			t.Fatalf("step %d: stat: %v, %v; want %v", i, info.Labels, err, s.want)
		}
		if !info.Created.Equal(created) || info.Updated.Before(created) || info.Kind != snapshot.KindActive {
			t.Fatalf("step %d: update changed more than labels: %+v", i, info)
		}
	}
	_, err = sn.Update(ctx, snapshot.Info{Name: "a", Parent: "p"}, "parent")
	expect(t, "update of the parent", err, errdefs.IsInvalidArgument, "InvalidArgument")
	_, err = sn.Update(ctx, snapshot.Info{Name: "missing"}, "labels")
	expect(t, "update of a missing snapshot", err, errdefs.IsNotFound, "NotFound")
	_, err = sn.Stat(ctx, "missing")
	expect(t, "stat of a missing snapshot", err, errdefs.IsNotFound, "NotFound")

	if err := sn.Commit(ctx, "c", "a", snapshot.WithLabels(map[string]string{"committed": "yes"})); err != nil {
		t.Fatal(err)
	}
	if info, err := sn.Stat(ctx, "c"); err != nil || info.Labels["committed"] != "yes" {
		t.Fatalf("labels given at commit: %+v, %v", info, err)
	}
}

func testWalkFilters(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "base", "", nil)
	if _, err := sn.Prepare(ctx, "work", "base", snapshot.WithLabels(map[string]string{"team": "a", "dotted.key": "d"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View(ctx, "look", "base", snapshot.WithLabels(map[string]string{"team": "b"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "alone", ""); err != nil {
		t.Fatal(err)
	}
	walk := func(filters ...string) []string {
		t.Helper()
		var names []string
		err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			names = append(names, info.Name)
			return nil
		}, filters...)
		if err != nil {
			t.Fatalf("walk %q: %v", filters, err)
		}
		slices.Sort(names)
		return names
	}
	for _, c := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"alone", "base", "look", "work"}},
		{[]string{"kind==Committed"}, []string{"base"}},
		{[]string{"kind==Active"}, []string{"alone", "work"}},
		{[]string{"kind==View"}, []string{"look"}},
		{[]string{"name==work"}, []string{"work"}},
		{[]string{"parent==base"}, []string{"look", "work"}},
		{[]string{"parent"}, []string{"look", "work"}},
		{[]string{`labels.team==a`}, []string{"work"}},
		{[]string{`labels."dotted.key"==d`}, []string{"work"}},
		{[]string{`labels.team`}, []string{"look", "work"}},
		{[]string{`labels.team==b`, "name==alone"}, []string{"alone", "look"}},
		{[]string{`labels.team==a,kind==View`}, nil},
		{[]string{`name~=^(al|ba)`}, []string{"alone", "base"}},
	} {
		if got := walk(c.filters...); !slices.Equal(got, c.want) {
			t.Errorf("walk %q: got %v, want %v", c.filters, got, c.want)
		}
	}
	err := sn.Walk(ctx, func(context.Context, snapshot.Info) error { return nil }, "name==")
	expect(t, "walk with a bad filter", err, errdefs.IsInvalidArgument, "InvalidArgument")

	stop := errors.New("stop")
	calls := 0
	err = sn.Walk(ctx, func(context.Context, snapshot.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("walk should stop at the first error: %v after %d calls", err, calls)
	}
}
