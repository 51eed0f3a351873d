package events_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// waitLimit bounds every wait, so a lost event fails the test instead of
// hanging it.
const waitLimit = 10 * time.Second

const syncTopic = "/test/sync"

func nsCtx(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

// collect reads envelopes until one on syncTopic arrives and returns those
// before it. Subscriptions in these tests OR their filter with
// topic==/test/sync, so publishing a sync event last marks the end of what
// a subscriber can receive, without sleeping.
func collect(t *testing.T, evs <-chan *events.Envelope, errs <-chan error) []*events.Envelope {
	t.Helper()
	var got []*events.Envelope
	timeout := time.After(waitLimit)
	for {
		select {
		case env, ok := <-evs:
			if !ok {
				t.Fatalf("envelopes closed early: %v", <-errs)
			}
			if env.Topic == syncTopic {
				return got
			}
			got = append(got, env)
		case <-timeout:
			t.Fatalf("no sync event after %v; got %d envelopes", waitLimit, len(got))
		}
	}
}

func TestPublishValidation(t *testing.T) {
	ex := events.NewExchange()
	ctx := nsCtx("default")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ev := &eventsv1.TaskOOM{ContainerId: "c"}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		topic string
		event proto.Message
		want  string // substring of the error; empty for success
		class func(error) bool
	}{
		{"ok", ctx, "/tasks/oom", ev, "", nil},
		{"ok deep", ctx, "/a.b/c_d/e-f/0", ev, "", nil},
		{"no namespace", context.Background(), "/tasks/oom", ev, "namespace is required", errdefs.IsInvalidArgument},
		{"bad namespace", nsCtx("-x"), "/tasks/oom", ev, `identifier "-x"`, errdefs.IsInvalidArgument},
		{"no slash", ctx, "tasks/oom", ev, `topic "tasks/oom" must start with '/'`, errdefs.IsInvalidArgument},
		{"empty", ctx, "", ev, `topic "" must start with '/'`, errdefs.IsInvalidArgument},
		{"root", ctx, "/", ev, `topic "/" has an empty component`, errdefs.IsInvalidArgument},
		{"double slash", ctx, "/tasks//oom", ev, `topic "/tasks//oom" has an empty component`, errdefs.IsInvalidArgument},
		{"trailing slash", ctx, "/tasks/", ev, `topic "/tasks/" has an empty component`, errdefs.IsInvalidArgument},
		{"bad char", ctx, "/tasks/o om", ev, `topic "/tasks/o om" has invalid character ' '`, errdefs.IsInvalidArgument},
		{"nil event", ctx, "/tasks/oom", nil, "payload is nil", errdefs.IsInvalidArgument},
		{"typed nil event", ctx, "/tasks/oom", (*eventsv1.TaskOOM)(nil), "payload is nil", errdefs.IsInvalidArgument},
		{"canceled", canceled, "/tasks/oom", ev, "context canceled", errdefs.IsCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ex.Publish(tc.ctx, tc.topic, tc.event)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !tc.class(err) {
				t.Fatalf("Publish error = %v, want one containing %q of the right class", err, tc.want)
			}
		})
	}
}

func TestForwardValidation(t *testing.T) {
	ex := events.NewExchange()
	payload, err := anypb.New(&eventsv1.TaskOOM{ContainerId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	good := func() *events.Envelope {
		return &events.Envelope{Timestamp: time.Now(), Namespace: "k8s.io", Topic: "/tasks/oom", Event: payload}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*events.Envelope) *events.Envelope
		want   string
	}{
		{"ok", func(e *events.Envelope) *events.Envelope { return e }, ""},
		{"nil", func(*events.Envelope) *events.Envelope { return nil }, "envelope is nil"},
		{"no namespace", func(e *events.Envelope) *events.Envelope { e.Namespace = ""; return e }, "namespace: identifier must not be empty"},
		{"bad topic", func(e *events.Envelope) *events.Envelope { e.Topic = "oom"; return e }, `topic "oom" must start with '/'`},
		{"no time", func(e *events.Envelope) *events.Envelope { e.Timestamp = time.Time{}; return e }, "timestamp is missing"},
		{"no payload", func(e *events.Envelope) *events.Envelope { e.Event = nil; return e }, "payload or its type URL is missing"},
		{"no type", func(e *events.Envelope) *events.Envelope { e.Event = &anypb.Any{}; return e }, "payload or its type URL is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ex.Forward(context.Background(), tc.mutate(good()))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Forward error = %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}

// TestSubscribeFilters publishes one set of events and checks what each
// filter lets through, on topic, namespace and payload fields, through
// Publish and Forward alike.
func TestSubscribeFilters(t *testing.T) {
	ex := events.NewExchange()
	type published struct {
		ns, topic string
		ev        proto.Message
		forward   bool
	}
	all := []published{
		{"k8s.io", "/tasks/exit", &eventsv1.TaskExit{ContainerId: "c1", Pid: 10, ExitStatus: 0}, false},
		{"k8s.io", "/tasks/exit", &eventsv1.TaskExit{ContainerId: "c2", Pid: 11, ExitStatus: 137}, true},
		{"default", "/tasks/oom", &eventsv1.TaskOOM{ContainerId: "c1"}, false},
		{"k8s.io", "/images/create", &eventsv1.ImageCreate{Name: "docker.io/library/busybox:1", Labels: map[string]string{"io.cri-runtime/pin": "yes"}}, false},
		{"default", "/images/create", &eventsv1.ImageCreate{Name: "ghcr.io/x/y:2"}, true},
		{"k8s.io", "/content/create", &eventsv1.ContentCreate{Digest: "sha256:abc", Size: 3}, false},
	}
	for _, tc := range []struct {
		filters []string
		want    []int // indexes into all
	}{
		{nil, []int{0, 1, 2, 3, 4, 5}},
		{[]string{""}, []int{0, 1, 2, 3, 4, 5}},
		{[]string{"topic==/tasks/exit"}, []int{0, 1}},
		{[]string{`topic~=|^/tasks/|`}, []int{0, 1, 2}},
		{[]string{"topic~=^/images/", "topic==/content/create"}, []int{3, 4, 5}},
		{[]string{"namespace==default"}, []int{2, 4}},
		{[]string{"namespace!=default,topic~=^/tasks"}, []int{0, 1}},
		{[]string{"event.container_id==c1"}, []int{0, 2}},
		{[]string{"event.exit_status==0"}, []int{0}},
		{[]string{"event.exit_status!=0,topic==/tasks/exit"}, []int{1}},
		{[]string{"event.pid"}, []int{0, 1}},
		{[]string{`event.labels."io.cri-runtime/pin"==yes`}, []int{3}},
		{[]string{"event.labels"}, []int{3}},
		{[]string{"event.name~=^docker\\.io/"}, []int{3}},
		{[]string{"event.digest==sha256:abc,event.size==3"}, []int{5}},
		{[]string{"event.nope!=x,topic==/tasks/oom"}, []int{2}},
		{[]string{"namespace==none"}, nil},
	} {
		t.Run(strings.Join(tc.filters, " OR "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fs := tc.filters
			if fs != nil { // no filters selects everything, sync included
				fs = append(fs, "topic=="+syncTopic)
			}
			evs, errs := ex.Subscribe(ctx, fs...)
			for _, p := range all {
				if err := publish(ex, p.ns, p.topic, p.ev, p.forward); err != nil {
					t.Fatal(err)
				}
			}
			if err := ex.Publish(nsCtx("default"), syncTopic, &eventsv1.TaskOOM{}); err != nil {
				t.Fatal(err)
			}
			got := collect(t, evs, errs)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d envelopes, want %d", len(got), len(tc.want))
			}
			for i, idx := range tc.want {
				p := all[idx]
				env := got[i]
				msg, err := env.Event.UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				if env.Namespace != p.ns || env.Topic != p.topic || !proto.Equal(msg, p.ev) || env.Timestamp.IsZero() {
					t.Errorf("envelope %d = %s %s %v, want %s %s %v", i, env.Namespace, env.Topic, msg, p.ns, p.topic, p.ev)
				}
			}
		})
	}
}

func publish(ex *events.Exchange, ns, topic string, ev proto.Message, forward bool) error {
	if !forward {
		return ex.Publish(nsCtx(ns), topic, ev)
	}
	payload, err := anypb.New(ev)
	if err != nil {
		return err
	}
	return ex.Forward(context.Background(), &events.Envelope{Timestamp: time.Now(), Namespace: ns, Topic: topic, Event: payload})
}

func TestSubscribeBadFilter(t *testing.T) {
	ex := events.NewExchange()
	evs, errs := ex.Subscribe(context.Background(), "topic==/x", "name==")
	select {
	case err := <-errs:
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `filter "name=="`) {
			t.Fatalf("error = %v, want InvalidArgument naming the filter", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("no error for a bad filter")
	}
	if _, ok := <-errs; ok {
		t.Error("error channel not closed")
	}
	if _, ok := <-evs; ok {
		t.Error("envelope channel not closed")
	}
	// The bad subscription is not registered: publishing still works.
	if err := ex.Publish(nsCtx("default"), "/x", &eventsv1.TaskOOM{}); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeEndsWithContext(t *testing.T) {
	ex := events.NewExchange()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			evs, errs := ex.Subscribe(ctx)
			// Events queued but not taken when ctx ends are not delivered
			// after it; the subscription still ends promptly.
			for i := 0; i < 10; i++ {
				if err := ex.Publish(nsCtx("default"), "/x", &eventsv1.TaskOOM{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.want == context.Canceled {
				cancel()
			}
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for range evs {
				}
			}()
			select {
			case err := <-errs:
				if !errors.Is(err, tc.want) {
					t.Fatalf("error = %v, want %v", err, tc.want)
				}
			case <-time.After(waitLimit):
				t.Fatal("subscription did not end with its context")
			}
			select {
			case <-drained:
			case <-time.After(waitLimit):
				t.Fatal("envelope channel not closed")
			}
			if _, ok := <-errs; ok {
				t.Error("error channel not closed")
			}
		})
	}
}

// TestOrderPerPublisher runs publishers in parallel and checks that one
// subscriber sees each publisher's events in the order published.
func TestOrderPerPublisher(t *testing.T) {
	const publishers, each = 4, 200 // below SubscriberQueue: no drop possible
	ex := events.NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := ex.Subscribe(ctx, "topic==/tasks/exit")

	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Go(func() {
			pctx := nsCtx("ns" + strconv.Itoa(p))
			for i := 0; i < each; i++ {
				if err := ex.Publish(pctx, "/tasks/exit", &eventsv1.TaskExit{Id: strconv.Itoa(p), Pid: uint32(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make(map[string]uint32)
	timeout := time.After(waitLimit)
	for n := 0; n < publishers*each; n++ {
		select {
		case env := <-evs:
			var ev eventsv1.TaskExit
			if err := env.Event.UnmarshalTo(&ev); err != nil {
				t.Fatal(err)
			}
			if env.Namespace != "ns"+ev.Id {
				t.Fatalf("event of publisher %s in namespace %s", ev.Id, env.Namespace)
			}
			if ev.Pid != next[ev.Id] {
				t.Fatalf("publisher %s: got event %d, want %d", ev.Id, ev.Pid, next[ev.Id])
			}
			next[ev.Id]++
		case err := <-errs:
			t.Fatalf("subscription ended: %v", err)
		case <-timeout:
			t.Fatalf("got %d of %d events", n, publishers*each)
		}
	}
	wg.Wait()
}

// TestConcurrentPublishersAndSubscribers checks that every subscriber gets
// exactly the events its filter selects while publishers and subscribers
// run at once.
func TestConcurrentPublishersAndSubscribers(t *testing.T) {
	const publishers, each = 3, 100
	topics := []string{"/tasks/exit", "/tasks/oom", "/images/create"}
	filters := map[string]int{ // filter → events it selects
		"":                                     publishers * each * len(topics),
		"topic==/tasks/exit":                   publishers * each,
		"topic~=^/tasks/":                      2 * publishers * each,
		"namespace==ns0":                       each * len(topics),
		"namespace==ns1,topic==/images/create": each,
		"topic==/nope":                         0,
	}
	ex := events.NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var subs sync.WaitGroup
	for f, want := range filters {
		var fs []string
		if f != "" {
			fs = []string{f, "topic==" + syncTopic}
		}
		evs, errs := ex.Subscribe(ctx, fs...)
		subs.Go(func() {
			// All subscribers see one order, so the sync event published
			// after the publishers finish comes after all their events.
			if got := len(collect(t, evs, errs)); got != want {
				t.Errorf("filter %q: got %d events, want %d", f, got, want)
			}
		})
	}
	var pubs sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pubs.Go(func() {
			pctx := nsCtx(fmt.Sprintf("ns%d", p))
			for i := 0; i < each; i++ {
				for _, topic := range topics {
					if err := ex.Publish(pctx, topic, &eventsv1.TaskOOM{ContainerId: "c"}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	pubs.Wait()
	if err := ex.Publish(nsCtx("default"), syncTopic, &eventsv1.TaskOOM{}); err != nil {
		t.Fatal(err)
	}
	subs.Wait()
}

var droppedRE = regexp.MustCompile(`^subscriber too slow: (\d+) events dropped`)

// TestSlowSubscriberDropped checks that a subscriber that never reads is
// dropped with Unavailable once its queue overflows, while publishers never
// block and a reading subscriber gets every event.
func TestSlowSubscriberDropped(t *testing.T) {
	const total = events.SubscriberQueue + 100
	ex := events.NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slowEvs, slowErrs := ex.Subscribe(ctx)
	// The reader selects one event in ten, so it cannot fall behind.
	fastEvs, fastErrs := ex.Subscribe(ctx, "event.container_id==fast")

	published := make(chan error, 1)
	go func() {
		pctx := nsCtx("default")
		for i := 0; i < total; i++ {
			id := "slow"
			if i%10 == 0 {
				id = "fast"
			}
			if err := ex.Publish(pctx, "/tasks/oom", &eventsv1.TaskOOM{ContainerId: id}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	fast := 0
	timeout := time.After(waitLimit)
	for fast < total/10+1 {
		select {
		case <-fastEvs:
			fast++
		case err := <-fastErrs:
			t.Fatalf("fast subscriber ended: %v", err)
		case <-timeout:
			t.Fatalf("fast subscriber got %d events", fast)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	var err error
	select {
	case err = <-slowErrs:
	case <-time.After(waitLimit):
		t.Fatal("slow subscriber not dropped")
	}
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("slow subscriber error = %v, want Unavailable", err)
	}
	m := droppedRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("slow subscriber error = %q, want the dropped count", err)
	}
	// It lost everything up to the overflowing event: the queue, that
	// event, and possibly the one its goroutine held.
	if n, _ := strconv.Atoi(m[1]); n != events.SubscriberQueue+1 && n != events.SubscriberQueue+2 {
		t.Errorf("dropped %d events, want %d or %d", n, events.SubscriberQueue+1, events.SubscriberQueue+2)
	}
	if _, ok := <-slowEvs; ok {
		t.Error("dropped subscriber still delivers")
	}
	// The exchange keeps working for others.
	if err := ex.Publish(nsCtx("default"), "/tasks/oom", &eventsv1.TaskOOM{ContainerId: "fast"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fastEvs:
	case <-time.After(waitLimit):
		t.Fatal("fast subscriber stopped receiving after the drop")
	}
}

// TestNoGoroutineLeak subscribes and ends subscriptions in every way many
// times and checks that the goroutine count settles back.
func TestNoGoroutineLeak(t *testing.T) {
	ex := events.NewExchange()
	before := runtime.NumGoroutine()
	pctx := nsCtx("default")
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		evs, _ := ex.Subscribe(ctx, "topic==/x")
		_, _ = ex.Subscribe(ctx, "topic==")            // bad filter
		_, _ = ex.Subscribe(ctx, "namespace==default") // never read
		if err := ex.Publish(pctx, "/x", &eventsv1.TaskOOM{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-evs:
		case <-time.After(waitLimit):
			t.Fatal("no event")
		}
		cancel()
	}
	// One subscriber that is dropped for being slow.
	_, slowErrs := ex.Subscribe(context.Background())
	for i := 0; i <= events.SubscriberQueue+1; i++ {
		if err := ex.Publish(pctx, "/y", &eventsv1.TaskOOM{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-slowErrs; !errdefs.IsUnavailable(err) {
		t.Fatalf("slow subscriber: %v", err)
	}

	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := ex.Subscribers(); n != 0 {
		t.Errorf("%d subscribers still registered", n)
	}
}

// TestForwardKeepsItsOwnEnvelope guards the copy in Forward: a shim client
// reuses its envelope for the next event as soon as Forward returns.
func TestForwardKeepsItsOwnEnvelope(t *testing.T) {
	ex := events.NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, errs := ex.Subscribe(ctx)
	payload, err := anypb.New(&eventsv1.TaskOOM{ContainerId: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	env := &events.Envelope{Timestamp: ts, Namespace: "k8s.io", Topic: "/tasks/oom", Event: payload}
	if err := ex.Forward(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	env.Topic, env.Namespace = "/reused", "other"
	select {
	case got := <-evs:
		if got == env || got.Topic != "/tasks/oom" || got.Namespace != "k8s.io" || !got.Timestamp.Equal(ts) {
			t.Errorf("forwarded envelope = %+v, want the one given, unchanged", got)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(waitLimit):
		t.Fatal("no event")
	}
}

func TestPublishStampsTime(t *testing.T) {
	ex := events.NewExchange()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, _ := ex.Subscribe(ctx)
	before := time.Now()
	if err := ex.Publish(nsCtx("default"), "/x", &eventsv1.TaskOOM{}); err != nil {
		t.Fatal(err)
	}
	got := <-evs
	if got.Timestamp.Before(before.Add(-time.Second)) || got.Timestamp.After(time.Now().Add(time.Second)) || got.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v is not the UTC time of publishing (%v)", got.Timestamp, before)
	}
	if got.Event.GetTypeUrl() != "type.googleapis.com/cri_runtime.events.v1.TaskOOM" {
		t.Errorf("type URL = %q", got.Event.GetTypeUrl())
	}
}
