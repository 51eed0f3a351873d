package gc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func content(k string) Node { return Node{Type: ResourceContent, Namespace: "ns", Key: k} }

// graph is an adjacency list; refs counts calls so tests can check that
// each node is expanded once.
type graph map[Node][]Node

func (g graph) refs(calls map[Node]int) func(Node) ([]Node, error) {
	return func(n Node) ([]Node, error) {
		calls[n]++
		return g[n], nil
	}
}

func set(nodes ...Node) map[Node]struct{} {
	s := make(map[Node]struct{}, len(nodes))
	for _, n := range nodes {
		s[n] = struct{}{}
	}
	return s
}

func TestTricolorSmallGraphs(t *testing.T) {
	a, b, c, d, e, f := content("a"), content("b"), content("c"), content("d"), content("e"), content("f")
	for _, tc := range []struct {
		name  string
		g     graph
		roots []Node
		want  map[Node]struct{}
	}{
		{"no roots", graph{a: {b}}, nil, set()},
		{"root alone", graph{}, []Node{a}, set(a)},
		{"cycle", graph{a: {b}, b: {c}, c: {a}}, []Node{a}, set(a, b, c)},
		{"self loop", graph{a: {a, b}}, []Node{a}, set(a, b)},
		{"shared child", graph{a: {c}, b: {c}, c: {d}}, []Node{a, b}, set(a, b, c, d)},
		{"duplicate roots", graph{a: {b}}, []Node{a, a, b}, set(a, b)},
		{"unreachable island", graph{a: {b}, e: {f}, f: {e}, c: {a}}, []Node{a}, set(a, b)},
		{"same key other type", graph{a: {{Type: ResourceSnapshot, Namespace: "ns", Key: "a"}}}, []Node{a},
			set(a, Node{Type: ResourceSnapshot, Namespace: "ns", Key: "a"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := map[Node]int{}
			got, err := Tricolor(tc.roots, tc.g.refs(calls))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("reachable %v, want %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(tc.want)))
			}
			for n, k := range calls {
				if k != 1 {
					t.Errorf("refs(%v) called %d times, want once", n, k)
				}
				if _, ok := tc.want[n]; !ok {
					t.Errorf("refs called on unreachable %v", n)
				}
			}
			if len(calls) != len(tc.want) {
				t.Errorf("refs called on %d nodes, want %d", len(calls), len(tc.want))
			}
		})
	}
}

// A tall image has a long chain of snapshot parents; marking must not
// recurse per link.
func TestTricolorDeepChain(t *testing.T) {
	const n = 100_000
	node := func(i int) Node { return Node{Type: ResourceSnapshot, Namespace: "ns", Key: strconv.Itoa(i)} }
	refs := func(x Node) ([]Node, error) {
		i, err := strconv.Atoi(x.Key)
		if err != nil {
			return nil, err
		}
		if i+1 == n {
			return nil, nil
		}
		return []Node{node(i + 1)}, nil
	}
	got, err := Tricolor([]Node{node(0)}, refs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("reached %d nodes, want %d", len(got), n)
	}
	if _, ok := got[node(n-1)]; !ok {
		t.Fatal("end of chain not reached")
	}
}

func TestTricolorRefsError(t *testing.T) {
	a, b := content("a"), content("b")
	boom := fmt.Errorf("bucket of %q: %w", "b", errdefs.ErrInternal)
	_, err := Tricolor([]Node{a}, func(n Node) ([]Node, error) {
		if n == b {
			return nil, boom
		}
		return []Node{b}, nil
	})
	if !errors.Is(err, boom) || !errdefs.IsInternal(err) {
		t.Fatalf("error %v does not wrap the refs error", err)
	}
	if want := b.String(); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name node %q", err, want)
	}
}

func TestConcurrentMarkStreamedRoots(t *testing.T) {
	a, b, c, d, e := content("a"), content("b"), content("c"), content("d"), content("e")
	g := graph{a: {b}, b: {a, c}, d: {c}, e: {a}}
	calls := map[Node]int{}
	refs := func(_ context.Context, n Node, fn func(Node)) error {
		calls[n]++
		for _, c := range g[n] {
			fn(c)
		}
		return nil
	}
	roots := make(chan Node)
	go func() {
		defer close(roots)
		for _, r := range []Node{a, d, a} {
			roots <- r
		}
	}()
	got, err := ConcurrentMark(context.Background(), roots, refs)
	if err != nil {
		t.Fatal(err)
	}
	if want := set(a, b, c, d); !maps.Equal(got, want) {
		t.Fatalf("reachable %v, want %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(want)))
	}
	for n, k := range calls {
		if k != 1 {
			t.Errorf("refs(%v) called %d times", n, k)
		}
	}
}

func TestConcurrentMarkRefsError(t *testing.T) {
	roots := make(chan Node, 1)
	roots <- content("a")
	close(roots)
	_, err := ConcurrentMark(context.Background(), roots, func(context.Context, Node, func(Node)) error {
		return errdefs.ErrNotFound
	})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("got %v, want NotFound", err)
	}
}

func TestConcurrentMarkCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	roots := make(chan Node) // never closed: only ctx can end the mark
	errc := make(chan error, 1)
	go func() {
		_, err := ConcurrentMark(ctx, roots, func(context.Context, Node, func(Node)) error { return nil })
		errc <- err
	}()
	roots <- content("a")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ConcurrentMark ignored cancellation")
	}
}

func TestSweep(t *testing.T) {
	a, b, c, d := content("a"), content("b"), content("c"), content("d")
	var removed []Node
	err := Sweep(set(a, c), []Node{a, b, c, d}, func(n Node) error {
		removed = append(removed, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Node{b, d}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
}

func TestSweepStopsAtFirstError(t *testing.T) {
	a, b, c := content("a"), content("b"), content("c")
	var removed []Node
	err := Sweep(set(), []Node{a, b, c}, func(n Node) error {
		removed = append(removed, n)
		if n == b {
			return errdefs.ErrConflict
		}
		return nil
	})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), b.String()) {
		t.Fatalf("got %v, want Conflict naming %v", err, b)
	}
	if want := []Node{a, b}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
}

func TestResourceTypeString(t *testing.T) {
	if got := ResourceSnapshot.String(); got != "snapshot" {
		t.Fatal(got)
	}
	if got := ResourceType(200).String(); got != "type(200)" {
		t.Fatal(got)
	}
}
