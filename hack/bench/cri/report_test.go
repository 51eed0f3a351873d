package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	// With 50 samples p99 is the largest: one slow pod in 50 shows.
	if got := percentile(d[50:], 99); got != 50*time.Millisecond {
		t.Errorf("p99 of 1..50 ms = %v, want the max", got)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("percentile sorted its argument")
	}
}

func TestSummarizeSpreadOverRounds(t *testing.T) {
	ms := time.Millisecond
	st := summarize([][]time.Duration{{10 * ms, 20 * ms, 30 * ms}, {40 * ms, 50 * ms, 60 * ms}})
	if st.n != 6 || st.p50 != 30*ms || st.p99 != 60*ms || st.mean != 35*ms || st.max != 60*ms {
		t.Errorf("pooled: %+v", st)
	}
	if len(st.roundP50s) != 2 || st.roundP50s[0] != 20*ms || st.roundP50s[1] != 50*ms ||
		st.roundP99Min != 30*ms || st.roundP99Max != 60*ms {
		t.Errorf("rounds: %+v", st)
	}
}

func TestComparisonRatioIsOtherOverReference(t *testing.T) {
	ms := time.Millisecond
	rep := report{names: []string{"ref", "new"}, parallel: 20, listPods: 100, res: map[string]samples{
		"ref": {mPodStart: {{100 * ms, 200 * ms}}, mParStart: {{1000 * ms}}},
		"new": {mPodStart: {{50 * ms, 60 * ms}}, mParStart: {{1500 * ms}}},
	}}
	var b bytes.Buffer
	rep.comparison(&b, true)
	out := b.String()
	for _, want := range []string{
		"| ms | ref p50 | new p50 | new / ref p50 | ref p99 | new p99 | new / ref p99 |",
		"| pod start | 100 | 50.0 | 0.50 | 200 | 60.0 | 0.30 |",
		"| pod start, 20 at once | 1000 | 1500 | 1.50 | 1000 | 1500 | 1.50 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "RunPodSandbox") {
		t.Errorf("a metric without samples has a row:\n%s", out)
	}
}
