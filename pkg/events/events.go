// Package events carries the events of the daemon: an Envelope (timestamp,
// namespace, topic, typed payload) and an Exchange to publish them and
// subscribe with filters.
//
// Topics are paths such as /tasks/exit: they start with '/' and each
// component is made of letters, digits, '.', '_' and '-'. Payloads are proto
// messages carried as anypb.Any; the Exchange never blocks a publisher on a
// subscriber (see Subscribe for what happens to a slow one).
//
// Subscribers filter with the language of pkg/filters over the fields
// topic, namespace and event.<field>, where <field> is a proto field name of
// the payload, followed down nested messages (event.exited_at.seconds) and
// into string-keyed maps (event.labels.<key>).
//
// This package imports only leaves (errdefs, namespaces, identifiers,
// filters) and protobuf: never a store or a service.
package events

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Envelope is one event as delivered to subscribers.
type Envelope struct {
	Timestamp time.Time
	Namespace string
	Topic     string
	// Event is the payload; its TypeUrl names the message type
	// (e.g. "type.googleapis.com/cri_runtime.events.v1.ImageCreate").
	Event *anypb.Any
}

// Publisher publishes an event under topic in the namespace of ctx.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message) error
}

// ValidateTopic returns nil when topic is a valid topic and an
// InvalidArgument error naming it otherwise.
func ValidateTopic(topic string) error {
	if !strings.HasPrefix(topic, "/") {
		return fmt.Errorf("topic %q must start with '/': %w", topic, errdefs.ErrInvalidArgument)
	}
	for i, c := range strings.Split(topic[1:], "/") {
		if c == "" {
			return fmt.Errorf("topic %q has an empty component (number %d): %w", topic, i+1, errdefs.ErrInvalidArgument)
		}
		for j := 0; j < len(c); j++ {
			if !topicByte(c[j]) {
				return fmt.Errorf("topic %q has invalid character %q in component %q (allowed: letters, digits, '.', '_', '-'): %w",
					topic, rune(c[j]), c, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

func topicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
