package server

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// taskMetrics are the metrics of tasks: pkg/task reports through plain
// hooks (Config.ObserveStart and OnEvent, Manager.LiveShims), exported
// here, as pkg/task links no metrics library.
type taskMetrics struct {
	start prometheus.Histogram
	exits *prometheus.CounterVec
}

// newTaskMetrics registers the metrics of tasks on reg, but for the live
// shims, which need the Manager (registerShims).
func newTaskMetrics(reg prometheus.Registerer) (*taskMetrics, error) {
	m := &taskMetrics{
		start: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cri_runtime_task_start_seconds",
			Help:    "Time the start of a container's process took (the runtime's start, through the shim).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cri_runtime_task_exits_total",
			Help: "Exits of containers' and sandboxes' processes seen by this daemon as they happened, by reason (Completed, Error, OOMKilled, ShimGone).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.start, m.exits} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register task metrics: %w", err)
		}
	}
	return m, nil
}

// observeStart is the Manager's Config.ObserveStart.
func (m *taskMetrics) observeStart(d time.Duration) { m.start.Observe(d.Seconds()) }

// onEvent counts the exit of a container's (or sandbox's) init process as
// it happens, by reason: each is seen so once by a daemon, whose record
// may be gone already (run --rm). Exits replayed at a restore or after a
// resynchronisation are not counted (they happened while the daemon was
// down, or were counted when they did).
func (m *taskMetrics) onEvent(ev task.Event) {
	if ev.Topic == shimapi.TopicExit && ev.ExecID == "" && ev.Exit != nil && !ev.Replayed {
		m.exits.WithLabelValues(exitReason(*ev.Exit)).Inc()
	}
}

// exitReason is the reason of an exit as a status says it: the shim's
// (OOMKilled, ShimGone), else Completed or Error.
func exitReason(e task.Exit) string {
	switch {
	case e.Reason != "":
		return e.Reason
	case e.Status == 0:
		return "Completed"
	}
	return "Error"
}

// registerShims registers the gauge of the shims tm is connected to.
func registerShims(reg prometheus.Registerer, tm *task.Manager) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cri_runtime_task_shims",
		Help: "Shims the daemon is connected to (one per sandbox group with a container).",
	}, func() float64 { return float64(tm.LiveShims()) })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register task metrics: %w", err)
	}
	return nil
}
