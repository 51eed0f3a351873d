package cri

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the CRI's own; per-RPC counts and latencies are the server
// interceptor's.
type metrics struct {
	// phases times each step of a pod's start, and of a container's
	// create and start, by rpc and phase.
	phases *prometheus.HistogramVec
	// inProgress counts the creates in progress by rpc and the stage they
	// are in: a slow create shows where it is.
	inProgress *prometheus.GaugeVec

	mu     sync.Mutex // guards stages
	stages map[string]stageAt
}

type stageAt struct {
	rpc, name string
	at        time.Time
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cri_runtime_cri_create_phase_seconds",
			Help:    "Time spent in each phase of RunPodSandbox (snapshot, files, netns, cni, record, shim, start, image) and CreateContainer, by rpc and phase.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"rpc", "phase"}),
		inProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cri_runtime_cri_creates_in_progress",
			Help: "RunPodSandbox and CreateContainer calls in progress, by rpc and the phase they are in.",
		}, []string{"rpc", "phase"}),
		stages: map[string]stageAt{},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.phases, m.inProgress} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register cri metrics: %w", err)
			}
		}
	}
	return m, nil
}

// stage returns the stage callback of rpc's creates: it times the phase
// that ends and moves the create to the next ("" when it is done).
func (m *metrics) stage(rpc string) func(key, stage string) {
	return func(key, name string) {
		now := time.Now()
		m.mu.Lock()
		defer m.mu.Unlock()
		if prev, ok := m.stages[key]; ok {
			m.phases.WithLabelValues(rpc, prev.name).Observe(now.Sub(prev.at).Seconds())
			m.inProgress.WithLabelValues(rpc, prev.name).Dec()
		}
		if name == "" {
			delete(m.stages, key)
			return
		}
		m.stages[key] = stageAt{rpc: rpc, name: name, at: now}
		m.inProgress.WithLabelValues(rpc, name).Inc()
	}
}
