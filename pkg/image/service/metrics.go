package service

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pulls' figures.
type metrics struct {
	pulls      *prometheus.CounterVec // by result
	bytes      prometheus.Counter     // fetched from registries
	duration   prometheus.Histogram   // of pulls that succeeded
	throughput prometheus.Histogram   // fetched bytes per second of pull
}

func newMetrics() *metrics {
	return &metrics{
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_runtime_image_pulls_total",
			Help: "Image pulls, by result: ok, or the error class of a failed pull.",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cri_runtime_image_pull_bytes_total",
			Help: "Bytes fetched from registries by pulls (blobs already held are not fetched).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cri_runtime_image_pull_duration_seconds",
			Help:    "Time of a successful pull, resolve to unpacked.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		throughput: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cri_runtime_image_pull_throughput_bytes_per_second",
			Help:    "Bytes fetched per second of a successful pull that fetched something, unpacking included.",
			Buckets: prometheus.ExponentialBuckets(1<<20, 2, 12),
		}),
	}
}

// WithRegisterer registers the pulls' metrics on reg; by default they are
// not registered.
func WithRegisterer(reg prometheus.Registerer) Opt {
	return func(s *Service) { s.register = reg }
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.pulls, m.bytes, m.duration, m.throughput} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register image metrics: %w", err)
		}
	}
	return nil
}

// pulled counts a finished pull.
func (m *metrics) pulled(err error, fetched int64, elapsed time.Duration) {
	if err != nil {
		m.pulls.WithLabelValues(errClass(err)).Inc()
		return
	}
	m.pulls.WithLabelValues("ok").Inc()
	m.bytes.Add(float64(fetched))
	m.duration.Observe(elapsed.Seconds())
	if fetched > 0 && elapsed > 0 {
		m.throughput.Observe(float64(fetched) / elapsed.Seconds())
	}
}
