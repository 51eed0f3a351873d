package events

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
)

// TestTooSlowCount checks the dropped count without a delivering goroutine,
// so that where the overflow happens is deterministic: the count must equal
// every event the subscriber did not get up to its removal.
func TestTooSlowCount(t *testing.T) {
	for _, inHand := range []int{0, 1} {
		t.Run(fmt.Sprintf("in hand %d", inHand), func(t *testing.T) {
			var e Exchange // the zero Exchange must work
			s := e.register(filters.Always)
			env := &Envelope{Timestamp: time.Now(), Namespace: "ns", Topic: "/x"}
			published := 0
			for ; published < SubscriberQueue; published++ {
				e.broadcast(newAdaptor(env, nil))
			}
			if inHand == 1 {
				<-s.queue // taken by the goroutine, not yet handed over
				e.broadcast(newAdaptor(env, nil))
				published++
			}
			select {
			case <-s.gone:
				t.Fatal("dropped with a queue that is not over full")
			default:
			}
			e.broadcast(newAdaptor(env, nil)) // overflows
			published++
			e.broadcast(newAdaptor(env, nil)) // after removal: not counted
			select {
			case <-s.gone:
			default:
				t.Fatal("not dropped on overflow")
			}
			if n := e.Subscribers(); n != 0 {
				t.Errorf("%d subscribers registered after the drop", n)
			}
			err := s.tooSlow(inHand)
			if !errdefs.IsUnavailable(err) {
				t.Errorf("error %v is not Unavailable", err)
			}
			want := fmt.Sprintf("subscriber too slow: %d events dropped", published)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want prefix %q", err, want)
			}
		})
	}
}
