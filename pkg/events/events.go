// Package events carries the events of the daemon: an Envelope (timestamp,
// namespace, topic, typed payload) and an Exchange to publish them and
// subscribe with filters.
//
// This package imports only leaves and protobuf.
package events

import (
	"context"
	"time"

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
