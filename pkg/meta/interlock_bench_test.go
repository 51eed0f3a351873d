package meta_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// BenchmarkInterlock measures what slow backend work does to everyone
// else: a collection is forced in a loop, with garbage pending so that
// each one takes the writers' interlock, while unrelated writers create
// and delete leases. With -copy (the default) a third goroutine prepares
// native snapshots over a committed parent of benchInterlockMB, each a
// full copy. Reported: the unrelated write's latency (p50, p99, max) and
// the collection's pause (gc.Stats.MetaD, p50 and max). The idle variant
// is the same without the copies: the figures to stay near.
//
//	go test -run '^$' -bench BenchmarkInterlock -benchtime 3s ./pkg/meta/
func BenchmarkInterlock(b *testing.B) {
	for _, copying := range []bool{false, true} {
		name := "idle"
		if copying {
			name = "native-copy"
		}
		b.Run(name, func(b *testing.B) { benchmarkInterlock(b, copying) })
	}
}

const benchInterlockMB = 256

func benchmarkInterlock(b *testing.B, copying bool) {
	env := newEnv(b)
	db := env.DB
	ctx := nsCtx(b, "bench")
	sn := db.Snapshotter("native")
	lctx := leased(b, db, ctx)
	if copying {
		mounts, err := sn.Prepare(lctx, "parent-active", "")
		if err != nil {
			b.Fatal(err)
		}
		err = mount.WithTempMount(ctx, mounts, func(root string) error {
			buf := make([]byte, 1<<20)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			for i := range benchInterlockMB {
				if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := sn.Commit(lctx, "parent", "parent-active"); err != nil {
			b.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var copies atomic.Int64
	if copying {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("copy-%d", i)
				if _, err := sn.Prepare(lctx, key, "parent"); err != nil {
					b.Error(err)
					return
				}
				copies.Add(1)
				if err := sn.Remove(lctx, key); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	var pauses []time.Duration
	var pmu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Garbage for the sweep: a blob nothing holds.
			blob(b, ctx, db.ContentStore(), []byte(fmt.Sprintf("garbage %d", i)), nil)
			st, err := db.GarbageCollect(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			pmu.Lock()
			pauses = append(pauses, st.MetaD)
			pmu.Unlock()
		}
	}()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		l, err := db.Leases().Create(ctx, meta.WithLeaseID(fmt.Sprintf("unrelated-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if err := db.Leases().Delete(ctx, l); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	pmu.Lock()
	slices.Sort(pauses)
	pmu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	q := func(s []time.Duration, f float64) time.Duration {
		if len(s) == 0 {
			return 0
		}
		return s[min(len(s)-1, int(f*float64(len(s))))]
	}
	b.ReportMetric(ms(q(lat, 0.5)), "write-p50-ms")
	b.ReportMetric(ms(q(lat, 0.99)), "write-p99-ms")
	b.ReportMetric(ms(q(lat, 1)), "write-max-ms")
	b.ReportMetric(ms(q(pauses, 0.5)), "pause-p50-ms")
	b.ReportMetric(ms(q(pauses, 1)), "pause-max-ms")
	b.ReportMetric(float64(copies.Load()), "copies")
	b.ReportMetric(0, "ns/op")
}
