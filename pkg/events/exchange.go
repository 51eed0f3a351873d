package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// SubscriberQueue is how many events may wait for one subscriber. A
// subscriber that lets more pile up is dropped rather than slowing the
// publishers, which run on the daemon's hot paths (task exits, pulls).
const SubscriberQueue = 1024

// Exchange delivers published events to every subscriber whose filter
// matches. Publish and Forward never block on subscribers. All subscribers
// see the events in the same order, so the events of one publisher arrive
// in the order it published them.
//
// Delivered envelopes are shared between subscribers: treat them as read
// only.
type Exchange struct {
	mu sync.Mutex
	// subscribers is guarded by mu. A subscriber leaves it when its ctx is
	// done or when a publisher finds its queue full.
	subscribers map[*subscriber]struct{}
}

var _ Publisher = (*Exchange)(nil)

// NewExchange returns an Exchange with no subscribers.
func NewExchange() *Exchange {
	return &Exchange{subscribers: make(map[*subscriber]struct{})}
}

// subscriber is one Subscribe call. Publishers put matching envelopes in
// queue under Exchange.mu and never block; the goroutine started by
// Subscribe owns the rest and moves them to the caller.
type subscriber struct {
	filter filters.Filter
	queue  chan *Envelope
	// gone is closed, under Exchange.mu and after removal from the
	// exchange, by the publisher that found queue full. No one sends on
	// queue after that.
	gone chan struct{}
}

// Publish wraps event in an Envelope stamped with the current time and the
// namespace of ctx, which is required, and delivers it under topic.
func (e *Exchange) Publish(ctx context.Context, topic string, event proto.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return fmt.Errorf("event %s: %w", topic, err)
	}
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	if event == nil || !event.ProtoReflect().IsValid() {
		return fmt.Errorf("event %s: payload is nil: %w", topic, errdefs.ErrInvalidArgument)
	}
	payload, err := anypb.New(event)
	if err != nil {
		return fmt.Errorf("event %s: payload %s: %w: %w", topic, event.ProtoReflect().Descriptor().FullName(), err, errdefs.ErrInvalidArgument)
	}
	env := &Envelope{Timestamp: time.Now().UTC(), Namespace: ns, Topic: topic, Event: payload}
	e.broadcast(newAdaptor(env, event))
	return nil
}

// Forward delivers an envelope made elsewhere, such as an event of a shim,
// as it is. The envelope must be complete: timestamp, valid namespace and
// topic, and a payload with a type URL. The exchange keeps its own copy of
// the envelope (not of the payload), so the caller may reuse env.
func (e *Exchange) Forward(ctx context.Context, env *Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateEnvelope(env); err != nil {
		return err
	}
	cp := *env
	e.broadcast(newAdaptor(&cp, nil))
	return nil
}

func validateEnvelope(env *Envelope) error {
	if env == nil {
		return fmt.Errorf("envelope is nil: %w", errdefs.ErrInvalidArgument)
	}
	if err := ValidateTopic(env.Topic); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if err := identifiers.Validate(env.Namespace); err != nil {
		return fmt.Errorf("envelope %s: namespace: %w", env.Topic, err)
	}
	if env.Timestamp.IsZero() {
		return fmt.Errorf("envelope %s: timestamp is missing: %w", env.Topic, errdefs.ErrInvalidArgument)
	}
	if env.Event == nil || env.Event.GetTypeUrl() == "" {
		return fmt.Errorf("envelope %s: payload or its type URL is missing: %w", env.Topic, errdefs.ErrInvalidArgument)
	}
	return nil
}

// broadcast queues the envelope of a for every matching subscriber and
// drops those whose queue is full. Holding mu across the loop is what gives
// every subscriber the same order.
func (e *Exchange) broadcast(a *adaptor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subscribers {
		if !s.filter.Match(a) {
			continue
		}
		select {
		case s.queue <- a.env:
		default:
			delete(e.subscribers, s)
			close(s.gone)
		}
	}
}

// Subscribe delivers the envelopes that match any of filters (all when
// there are none) until ctx is done; then the error channel receives
// ctx.Err() and both channels close. Events published after Subscribe
// returns are seen. A bad filter is reported at once on the error channel,
// as InvalidArgument. A subscriber that falls SubscriberQueue events behind
// is dropped: the error channel receives an Unavailable error saying how
// many events it lost, and the caller should resubscribe and resync.
//
// The error channel is buffered, so a caller may drain the envelopes until
// that channel closes and read the error afterwards.
func (e *Exchange) Subscribe(ctx context.Context, filterStrs ...string) (<-chan *Envelope, <-chan error) {
	out := make(chan *Envelope)
	errc := make(chan error, 1)
	f, err := filters.ParseAll(filterStrs...)
	if err != nil {
		errc <- err
		close(errc)
		close(out)
		return out, errc
	}
	s := e.register(f)
	// The subscription owns this goroutine; it ends with ctx or the drop.
	go func() {
		defer close(errc)
		defer close(out)
		errc <- e.deliver(ctx, s, out)
	}()
	return out, errc
}

func (e *Exchange) register(f filters.Filter) *subscriber {
	s := &subscriber{
		filter: f,
		queue:  make(chan *Envelope, SubscriberQueue),
		gone:   make(chan struct{}),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subscribers == nil { // the zero Exchange is usable too
		e.subscribers = make(map[*subscriber]struct{})
	}
	e.subscribers[s] = struct{}{}
	return s
}

// deliver moves queued envelopes to out until ctx is done or s is dropped.
func (e *Exchange) deliver(ctx context.Context, s *subscriber, out chan<- *Envelope) error {
	for {
		select {
		case <-ctx.Done():
			e.unsubscribe(s)
			return ctx.Err()
		case <-s.gone:
			return s.tooSlow(0)
		case env := <-s.queue:
			select {
			case out <- env:
			case <-ctx.Done():
				e.unsubscribe(s)
				return ctx.Err()
			case <-s.gone:
				return s.tooSlow(1)
			}
		}
	}
}

// Subscribers returns how many subscriptions are registered, for tests and
// status pages.
func (e *Exchange) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subscribers)
}

func (e *Exchange) unsubscribe(s *subscriber) {
	e.mu.Lock()
	delete(e.subscribers, s)
	e.mu.Unlock()
}

// tooSlow counts what s lost: the event that did not fit, the ones still
// queued (stable, since no one sends after gone) and inHand, the one being
// handed over when the drop came.
func (s *subscriber) tooSlow(inHand int) error {
	n := 1 + len(s.queue) + inHand
	return fmt.Errorf("subscriber too slow: %d events dropped when its queue of %d filled, resubscribe: %w",
		n, cap(s.queue), errdefs.ErrUnavailable)
}
