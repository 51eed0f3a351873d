package service

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPull pulls and unpacks $CRI_RUNTIME_BENCH_REF (an image on a
// loopback registry, e.g. one hack/bench/pull/genimage wrote and skopeo
// pushed) into a fresh root each iteration, from a cold page cache when
// running as root, and reports where the time went. Set
// CRI_RUNTIME_BENCH_SNAPSHOTTER to "native" to measure that one.
//
//	CRI_RUNTIME_BENCH_REF=127.0.0.1:5000/bench:6layer go test -run - -bench Pull -benchtime 3x ./pkg/image/service/
func BenchmarkPull(b *testing.B) {
	ref := os.Getenv("CRI_RUNTIME_BENCH_REF")
	if ref == "" {
		b.Skip("CRI_RUNTIME_BENCH_REF is not set")
	}
	sn := os.Getenv("CRI_RUNTIME_BENCH_SNAPSHOTTER")
	if sn == "" {
		sn = "overlayfs"
	}
	par := DefaultMaxUnpackParallel
	if v, err := strconv.Atoi(os.Getenv("CRI_RUNTIME_BENCH_UNPACK_PARALLEL")); err == nil {
		par = v
	}
	var sum Summary
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		e := newTestEnv(b, sn, func(c *Config) { c.MaxUnpackParallel = par })
		dropCaches()
		b.StartTimer()
		var last *Summary
		if _, err := e.svc.Pull(e.ctx, ref, WithProgress(func(p Progress) {
			if p.Summary != nil {
				last = p.Summary
			}
		})); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		elapsed += last.Elapsed
		sum.FetchedBytes += last.FetchedBytes
		sum.Fetch += last.Fetch
		sum.Apply += last.Apply
		sum.Sync += last.Sync
		sum.Commit += last.Commit
		sum.Streamed += last.Streamed
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.FetchedBytes)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(elapsed.Seconds()/n, "s/pull")
	b.ReportMetric(sum.Fetch.Seconds()/n, "fetch-s")
	b.ReportMetric(sum.Apply.Seconds()/n, "apply-s")
	b.ReportMetric(sum.Sync.Seconds()/n, "sync-s")
	b.ReportMetric(sum.Commit.Seconds()/n, "commit-s")
	b.ReportMetric(float64(sum.Streamed)/n, "streamed")
}

// dropCaches writes dirty pages back and empties the page cache, so that
// every pull starts cold; it does nothing when not root.
func dropCaches() {
	if os.Getuid() != 0 {
		return
	}
	_ = exec.Command("sync").Run()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
}
