package gc

import (
	"context"
	"fmt"
)

// Tricolor returns the set of nodes reachable from roots, following the
// edges that refs reports for each node.
//
// Colours: a node absent from the result is white, a node in the result
// and still on the work stack is grey, and a node in the result whose
// references have been pushed is black. Marking is iterative, with an
// explicit stack, because reference chains (snapshot parents of a tall
// image, for instance) can be far deeper than a goroutine stack should
// recurse. refs is called exactly once per reachable node; its first error
// stops the mark and is returned wrapped with the node it was asked about.
func Tricolor(roots []Node, refs func(ref Node) ([]Node, error)) (map[Node]struct{}, error) {
	reachable := make(map[Node]struct{}, len(roots))
	grey := make([]Node, 0, len(roots))
	for _, r := range roots {
		if _, ok := reachable[r]; !ok {
			reachable[r] = struct{}{}
			grey = append(grey, r)
		}
	}
	for len(grey) > 0 {
		n := grey[len(grey)-1]
		grey = grey[:len(grey)-1]
		children, err := refs(n)
		if err != nil {
			return nil, fmt.Errorf("gc mark: references of %v: %w", n, err)
		}
		for _, c := range children {
			if _, ok := reachable[c]; !ok {
				reachable[c] = struct{}{}
				grey = append(grey, c)
			}
		}
	}
	return reachable, nil
}

// ConcurrentMark marks while roots stream in: the database can scan its
// root buckets in one goroutine and send each root on the channel, and the
// mark of the graph below a root starts before the scan is over. It returns
// the reachable set once root is closed and every root has been marked.
//
// refs reports the references of a node by calling fn once per reference;
// it is called exactly once per reachable node, from the calling goroutine
// only, so refs and fn need no locking. A refs error or the end of ctx
// stops the mark. The producer owns root and must close it; on an error it
// must also stop sending (it shares ctx), since nothing drains root then.
func ConcurrentMark(ctx context.Context, root <-chan Node, refs func(context.Context, Node, func(Node)) error) (map[Node]struct{}, error) {
	reachable := make(map[Node]struct{})
	var grey []Node
	push := func(n Node) {
		if _, ok := reachable[n]; !ok {
			reachable[n] = struct{}{}
			grey = append(grey, n)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gc mark: %w", ctx.Err())
		case r, ok := <-root:
			if !ok {
				return reachable, nil
			}
			push(r)
		}
		// Blacken everything below the new root before taking the next
		// one; checking ctx between nodes keeps a huge graph cancellable.
		for len(grey) > 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("gc mark: %w", err)
			}
			n := grey[len(grey)-1]
			grey = grey[:len(grey)-1]
			if err := refs(ctx, n, push); err != nil {
				return nil, fmt.Errorf("gc mark: references of %v: %w", n, err)
			}
		}
	}
}

// Sweep calls remove for every node of all that is not in reachable, in the
// order of all. It stops at the first error, returned wrapped with the node:
// inside a bbolt transaction an error means rollback, so carrying on would
// be wasted work.
func Sweep(reachable map[Node]struct{}, all []Node, remove func(Node) error) error {
	for _, n := range all {
		if _, ok := reachable[n]; ok {
			continue
		}
		if err := remove(n); err != nil {
			return fmt.Errorf("gc sweep: remove %v: %w", n, err)
		}
	}
	return nil
}
