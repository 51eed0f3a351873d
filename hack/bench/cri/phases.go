package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"
)

// bench is one run over the runtimes. Within every phase the runtimes
// take turns at the finest grain the phase allows (a pod, a wave, a list
// call), in an order that rotates: a moment of load of the shared machine
// weighs on each of them alike.
type bench struct {
	ctx  context.Context
	rts  []*runtimeUnderTest
	recs map[string]*recorder
}

// runAll pulls the images, warms the runtimes up and runs the rounds.
func runAll(ctx context.Context, rts []*runtimeUnderTest) (map[string]samples, map[string]memFigures, error) {
	b := &bench{ctx: ctx, rts: rts, recs: map[string]*recorder{}}
	for _, rt := range rts {
		b.recs[rt.name] = &recorder{s: samples{}}
		for _, ref := range []string{*pauseImage, *image} {
			if ref == "" {
				continue
			}
			if err := rt.ensureImage(ctx, ref); err != nil {
				return nil, nil, err
			}
		}
		for i := 0; i < *warmup; i++ {
			if err := rt.startStop(ctx, fmt.Sprintf("warmup-%d", i), timer{}); err != nil {
				return nil, nil, fmt.Errorf("%s: warm-up: %w", rt.name, err)
			}
		}
	}
	log.Printf("memory, %d pods (load %s)", *memPods, loadavg())
	mem, err := memoryPhase(ctx, rts)
	if err != nil {
		return nil, nil, err
	}
	phases := []struct {
		name string
		run  func(round int) error
	}{{"sequential", b.sequential}, {"parallel", b.parallel}, {"list", b.list}}
	for round := 0; round < *rounds; round++ {
		for _, ph := range phases {
			log.Printf("round %d, %s (load %s)", round+1, ph.name, loadavg())
			if err := ph.run(round); err != nil {
				return nil, nil, fmt.Errorf("round %d, %s: %w", round+1, ph.name, err)
			}
			time.Sleep(*settle)
		}
	}
	out := map[string]samples{}
	for name, r := range b.recs {
		out[name] = r.s
	}
	return out, mem, nil
}

func (b *bench) timer(rt *runtimeUnderTest, round int) timer {
	return timer{rec: b.recs[rt.name], round: round}
}

// turns calls fn for each runtime, the first being the runtime step
// designates.
func (b *bench) turns(step int, fn func(*runtimeUnderTest) error) error {
	for i := range b.rts {
		rt := b.rts[(i+step)%len(b.rts)]
		if err := fn(rt); err != nil {
			return fmt.Errorf("%s: %w", rt.name, err)
		}
	}
	return nil
}

// perPodCPU runs phase and records, for each runtime whose CPU usage is
// known, the CPU time its cgroup spent in the phase per pod of the pods
// it started: its own work only, whatever the others did meanwhile.
func (b *bench) perPodCPU(round int, metric string, pods int, phase func() error) error {
	before := map[*runtimeUnderTest]time.Duration{}
	for _, rt := range b.rts {
		if rt.cpuFile != "" {
			d, err := readCPU(rt.cpuFile)
			if err != nil {
				return err
			}
			before[rt] = d
		}
	}
	if err := phase(); err != nil {
		return err
	}
	for rt, d := range before {
		after, err := readCPU(rt.cpuFile)
		if err != nil {
			return err
		}
		if pods > 0 {
			b.timer(rt, round).add(metric, (after-d)/time.Duration(pods))
		}
	}
	return nil
}

// sequential starts and tears down -n pods on each runtime, one at a time,
// the runtimes taking turns pod by pod.
func (b *bench) sequential(round int) error {
	return b.perPodCPU(round, mCPUSeq, *n, func() error {
		for i := 0; i < *n; i++ {
			if err := b.turns(i+round, func(rt *runtimeUnderTest) error {
				return rt.startStop(b.ctx, fmt.Sprintf("r%d-seq-%d", round, i), b.timer(rt, round))
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// parallel starts -parallel-pods pods on each runtime in waves of
// -parallel started at once, each wave torn down at once before the
// next; the runtimes take turns wave by wave.
func (b *bench) parallel(round int) error {
	return b.perPodCPU(round, mCPUPar, *parallelPods, func() error {
		for w := 0; w*(*parallel) < *parallelPods; w++ {
			size := min(*parallel, *parallelPods-w*(*parallel))
			if err := b.turns(w+round, func(rt *runtimeUnderTest) error {
				return rt.wave(b.ctx, fmt.Sprintf("r%d-par-%d", round, w), size, b.timer(rt, round))
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// list starts -list-pods pods on each runtime (untimed, a few at a time),
// times -list-calls calls of ListContainers and of ListPodSandbox on each,
// the runtimes taking turns call by call, and removes the pods.
func (b *bench) list(round int) error {
	if *listPods == 0 || *listCalls == 0 {
		return nil
	}
	pods := map[*runtimeUnderTest][]*pod{}
	for _, rt := range b.rts {
		ps, err := rt.startMany(b.ctx, fmt.Sprintf("r%d-list", round), *listPods)
		pods[rt] = ps
		if err != nil {
			return fmt.Errorf("%s: %w", rt.name, err)
		}
	}
	for i := 0; i < *listCalls; i++ {
		if err := b.turns(i+round, func(rt *runtimeUnderTest) error {
			return rt.listOnce(b.ctx, *listPods, b.timer(rt, round))
		}); err != nil {
			return err
		}
	}
	for _, rt := range b.rts {
		if err := rt.stopMany(b.ctx, pods[rt]); err != nil {
			return fmt.Errorf("%s: %w", rt.name, err)
		}
	}
	return nil
}

// startStop starts and tears down one pod, each call timed.
func (r *runtimeUnderTest) startStop(ctx context.Context, name string, t timer) error {
	p, err := r.newPod(name)
	if err != nil {
		return err
	}
	_, total, err := r.start(ctx, p, t)
	if err != nil {
		return err
	}
	t.add(mPodStart, total)
	// A probe's exec, as kubelet's exec probes make it, once the
	// container runs its command.
	if err := p.waitReady(ctx); err != nil {
		return err
	}
	if _, err := t.call(mExecSync, func() error {
		_, _, err := r.rt.ExecSync(ctx, p.ctrID, []string{"true"}, 10*time.Second)
		return err
	}); err != nil {
		return err
	}
	down, err := r.stop(ctx, p, t)
	if err != nil {
		return err
	}
	t.add(mTeardown, down)
	return nil
}

// wave starts size pods at once, then tears them down at once; each
// pod's start and teardown is timed.
func (r *runtimeUnderTest) wave(ctx context.Context, prefix string, size int, t timer) error {
	pods := make([]*pod, size)
	for i := range pods {
		var err error
		if pods[i], err = r.newPod(fmt.Sprintf("%s-%d", prefix, i)); err != nil {
			return err
		}
	}
	if err := all(pods, func(p *pod) error {
		run, total, err := r.start(ctx, p, timer{})
		if err == nil {
			t.add(mParRun, run)
			t.add(mParStart, total)
		}
		return err
	}); err != nil {
		return err
	}
	return all(pods, func(p *pod) error {
		down, err := r.stop(ctx, p, timer{})
		if err == nil {
			t.add(mParDown, down)
		}
		return err
	})
}

// manyAtOnce is how many pods startMany and stopMany run at once.
const manyAtOnce = 10

// startMany starts count pods, untimed, a few at a time; it returns those
// it made, also on an error, for stopMany.
func (r *runtimeUnderTest) startMany(ctx context.Context, prefix string, count int) ([]*pod, error) {
	var pods []*pod
	for i := 0; i < count; i += manyAtOnce {
		batch := make([]*pod, min(manyAtOnce, count-i))
		for j := range batch {
			var err error
			if batch[j], err = r.newPod(fmt.Sprintf("%s-%d", prefix, i+j)); err != nil {
				return pods, err
			}
		}
		pods = append(pods, batch...)
		if err := all(batch, func(p *pod) error {
			_, _, err := r.start(ctx, p, timer{})
			return err
		}); err != nil {
			return pods, err
		}
	}
	return pods, nil
}

// stopMany tears pods down, untimed, a few at a time.
func (r *runtimeUnderTest) stopMany(ctx context.Context, pods []*pod) error {
	for i := 0; i < len(pods); i += manyAtOnce {
		if err := all(pods[i:min(i+manyAtOnce, len(pods))], func(p *pod) error {
			_, err := r.stop(ctx, p, timer{})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// listOnce times one call each of ListContainers and ListPodSandbox
// without a filter, as kubelet's relist makes them, with at least count
// pods present.
func (r *runtimeUnderTest) listOnce(ctx context.Context, count int, t timer) error {
	if _, err := t.call(mListCtrs, func() error {
		ctrs, err := r.rt.ListContainers(ctx, nil)
		if err == nil && len(ctrs) < count {
			err = fmt.Errorf("%d containers listed, want at least %d", len(ctrs), count)
		}
		return err
	}); err != nil {
		return err
	}
	_, err := t.call(mListPods, func() error {
		pods, err := r.rt.ListPodSandbox(ctx, nil)
		if err == nil && len(pods) < count {
			err = fmt.Errorf("%d pods listed, want at least %d", len(pods), count)
		}
		return err
	})
	return err
}

// all runs fn for each pod at once, released together, and returns the
// first error.
func all(pods []*pod, fn func(*pod) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	ready := make(chan struct{})
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			errs[i] = fn(p)
		}()
	}
	close(ready)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
