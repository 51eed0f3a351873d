package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// The metrics, in the order of the table. Each is a latency seen by the
// CRI client, one sample per call (or per pod for the sums).
const (
	mRun        = "RunPodSandbox"
	mPodStatus  = "PodSandboxStatus"
	mImage      = "ImageStatus"
	mCreate     = "CreateContainer"
	mStart      = "StartContainer"
	mCreateStrt = "CreateContainer + StartContainer"
	mPodStart   = "pod start"
	mExecSync   = "ExecSync (true), running pod"
	mStopCtr    = "StopContainer"
	mStopPod    = "StopPodSandbox"
	mRemoveCtr  = "RemoveContainer"
	mRemovePod  = "RemovePodSandbox"
	mTeardown   = "pod teardown"
	mParRun     = "RunPodSandbox, %d at once"
	mParStart   = "pod start, %d at once"
	mParDown    = "pod teardown, %d at once"
	mListCtrs   = "ListContainers, %d pods"
	mListPods   = "ListPodSandbox, %d pods"
	// CPU time of the runtime (daemon, shims, runc, CNI plugins: its
	// cgroup) per pod started and torn down: one sample per round.
	mCPUSeq = "CPU per pod (start + teardown), sequential"
	mCPUPar = "CPU per pod (start + teardown), %d at once"
)

// metricOrder is the rows of the table; the %d are filled by names.
var metricOrder = []string{
	mRun, mPodStatus, mImage, mCreate, mStart, mCreateStrt, mPodStart, mExecSync,
	mStopCtr, mStopPod, mRemoveCtr, mRemovePod, mTeardown,
	mParRun, mParStart, mParDown, mListCtrs, mListPods, mCPUSeq, mCPUPar,
}

// headline are the rows the targets are about: the short table.
var headline = map[string]bool{mRun: true, mCreate: true, mStart: true, mCreateStrt: true, mPodStart: true,
	mExecSync: true, mTeardown: true, mParStart: true, mListCtrs: true, mCPUSeq: true, mCPUPar: true}

// recorder gathers the samples of the runtimes, from many goroutines.
type recorder struct {
	mu sync.Mutex
	s  samples
}

func (r *recorder) add(metric string, round int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.add(metric, round, d)
}

// samples are the timings of one runtime: per metric, per round.
type samples map[string][][]time.Duration

func (s samples) add(metric string, round int, d time.Duration) {
	for len(s[metric]) <= round {
		s[metric] = append(s[metric], nil)
	}
	s[metric][round] = append(s[metric][round], d)
}

// all returns every sample of metric, over the rounds.
func (s samples) all(metric string) []time.Duration {
	var out []time.Duration
	for _, r := range s[metric] {
		out = append(out, r...)
	}
	return out
}

// stats summarises samples.
type stats struct {
	n                        int
	p50, p99, mean, max      time.Duration
	roundP50s                []time.Duration // p50 of each round, in round order
	roundMin, roundMax       time.Duration   // the spread of the rounds' p50
	roundP99Min, roundP99Max time.Duration
}

func summarize(rounds [][]time.Duration) stats {
	var st stats
	var all []time.Duration
	for _, r := range rounds {
		if len(r) == 0 {
			continue
		}
		all = append(all, r...)
		p50, p99 := percentile(r, 50), percentile(r, 99)
		st.roundP50s = append(st.roundP50s, p50)
		if len(st.roundP50s) == 1 || p50 < st.roundMin {
			st.roundMin = p50
		}
		st.roundMax = max(st.roundMax, p50)
		if len(st.roundP50s) == 1 || p99 < st.roundP99Min {
			st.roundP99Min = p99
		}
		st.roundP99Max = max(st.roundP99Max, p99)
	}
	st.n = len(all)
	if st.n == 0 {
		return st
	}
	st.p50, st.p99 = percentile(all, 50), percentile(all, 99)
	var sum time.Duration
	for _, d := range all {
		sum += d
		st.max = max(st.max, d)
	}
	st.mean = sum / time.Duration(st.n)
	return st
}

// percentile is the nearest-rank percentile p of d: the smallest sample
// that p percent of the samples do not exceed.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ms formats d in milliseconds, with one decimal below 100 ms.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	if f < 100 {
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.0f", f)
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(b)/float64(a))
}

// report is the figures of the runtimes; the first is the reference,
// the ratios are each other one over it.
type report struct {
	names    []string
	res      map[string]samples
	parallel int // pods at once in the parallel phase
	listPods int // pods present for the list calls
	mem      map[string]memFigures
}

// label fills the %d of a metric's name.
func (r report) label(metric string) string {
	switch metric {
	case mParRun, mParStart, mParDown, mCPUPar:
		return fmt.Sprintf(metric, r.parallel)
	case mListCtrs, mListPods:
		return fmt.Sprintf(metric, r.listPods)
	}
	return metric
}

// comparison writes the table of p50 and p99 of each runtime, with the
// ratios: every metric, or the headline ones when short.
func (r report) comparison(w io.Writer, short bool) {
	ref, others := r.names[0], r.names[1:]
	head := []string{"ms"}
	for _, q := range []string{"p50", "p99"} {
		for _, n := range r.names {
			head = append(head, n+" "+q)
		}
		for _, n := range others {
			head = append(head, fmt.Sprintf("%s / %s %s", n, ref, q))
		}
	}
	row(w, head)
	row(w, align(len(head)))
	for _, m := range metricOrder {
		if short && !headline[m] {
			continue
		}
		st := map[string]stats{}
		for _, n := range r.names {
			st[n] = summarize(r.res[n][m])
		}
		if st[ref].n == 0 {
			continue
		}
		cells := []string{r.label(m)}
		for _, q := range []func(stats) time.Duration{
			func(s stats) time.Duration { return s.p50 }, func(s stats) time.Duration { return s.p99 },
		} {
			for _, n := range r.names {
				cells = append(cells, ms(q(st[n])))
			}
			for _, n := range others {
				cells = append(cells, ratio(q(st[ref]), q(st[n])))
			}
		}
		row(w, cells)
	}
}

// details writes, per metric and runtime, the sample count, p50, p99,
// mean, max, and the spread over the rounds: each round's p50 and the
// range of their p99.
func (r report) details(w io.Writer) {
	head := []string{"ms", "runtime", "n", "p50", "p99", "mean", "max", "p50 of each round", "p99 range over rounds"}
	row(w, head)
	row(w, align(len(head)))
	for _, m := range metricOrder {
		for _, n := range r.names {
			st := summarize(r.res[n][m])
			if st.n == 0 {
				continue
			}
			var rounds []string
			for _, d := range st.roundP50s {
				rounds = append(rounds, ms(d))
			}
			row(w, []string{r.label(m), n, fmt.Sprint(st.n), ms(st.p50), ms(st.p99), ms(st.mean), ms(st.max),
				strings.Join(rounds, ", "), ms(st.roundP99Min) + "–" + ms(st.roundP99Max)})
		}
	}
}

func row(w io.Writer, cells []string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func align(n int) []string {
	out := []string{"---"}
	for i := 1; i < n; i++ {
		out = append(out, "---:")
	}
	return out
}
