package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	api "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// EventService mirrors the events Exchange over the events service.
type EventService struct {
	client api.EventsClient
}

// Publish publishes event under topic in the namespace of ctx.
func (s *EventService) Publish(ctx context.Context, topic string, event proto.Message) error {
	a, err := anypb.New(event)
	if err != nil {
		return fmt.Errorf("publish %q: %w: %w", topic, err, errdefs.ErrInvalidArgument)
	}
	_, err = s.client.Publish(ctx, &api.PublishRequest{Topic: topic, Event: a})
	return err
}

// Forward sends env as is.
func (s *EventService) Forward(ctx context.Context, env *events.Envelope) error {
	_, err := s.client.Forward(ctx, &api.ForwardRequest{Envelope: convert.EnvelopeToProto(env)})
	return err
}

// Subscribe streams the events matching any of filters until ctx ends.
// The subscription is active when Subscribe returns. The error channel
// receives at most one error (nil after a clean end, when ctx is
// cancelled) and is then closed, as is the envelope channel.
func (s *EventService) Subscribe(ctx context.Context, filters ...string) (<-chan *events.Envelope, <-chan error) {
	envs := make(chan *events.Envelope)
	errs := make(chan error, 1)
	stream, err := s.client.Subscribe(ctx, &api.SubscribeRequest{Filters: filters})
	if err == nil {
		// Wait for the daemon's headers: they come once it has subscribed.
		_, err = stream.Header()
	}
	if err != nil {
		errs <- err
		close(errs)
		close(envs)
		return envs, errs
	}
	go func() {
		defer close(errs)
		defer close(envs)
		for {
			e, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					err = nil
				}
				errs <- err
				return
			}
			select {
			case envs <- convert.EnvelopeFromProto(e):
			case <-ctx.Done():
				errs <- nil
				return
			}
		}
	}()
	return envs, errs
}
