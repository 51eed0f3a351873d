package gc

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Scheduler's figures. Build them with NewMetrics and pass
// them to NewScheduler; one Metrics per registry.
type Metrics struct {
	runs     prometheus.Counter
	failures prometheus.Counter
	pause    prometheus.Histogram
	duration prometheus.Histogram
	removed  *prometheus.CounterVec
}

// pauseBuckets resolve the 1–20 ms range where a healthy pause sits, in
// seconds, and still place multi-second outliers.
var pauseBuckets = []float64{
	.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .1, .25, .5, 1, 2.5,
}

// NewMetrics creates the metrics and registers them on reg. A nil reg
// leaves them unregistered (tests, tools). Registering twice on the same
// registry panics, as it is a wiring mistake.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cri_runtime_gc_runs_total",
			Help: "Garbage collections run, successful or not.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cri_runtime_gc_failures_total",
			Help: "Garbage collections that returned an error.",
		}),
		pause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cri_runtime_gc_pause_seconds",
			Help:    "Time a garbage collection blocked metadata writers (mark and metadata sweep).",
			Buckets: pauseBuckets,
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cri_runtime_gc_duration_seconds",
			Help:    "Whole time of a garbage collection, backend removals included.",
			Buckets: prometheus.ExponentialBuckets(.001, 2.5, 12),
		}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_runtime_gc_removed_total",
			Help: "Resources removed by garbage collection, by type.",
		}, []string{"type"}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.failures, m.pause, m.duration, m.removed)
	}
	return m
}

// observe records one run.
func (m *Metrics) observe(s Stats, err error) {
	m.runs.Inc()
	if err != nil {
		m.failures.Inc()
		return
	}
	m.pause.Observe(s.MetaD.Seconds())
	m.duration.Observe(s.Elapsed().Seconds())
	for t, n := range s.Removed {
		m.removed.WithLabelValues(t.String()).Add(float64(n))
	}
}
