package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// eventsService serves api/services/events over the events Exchange.
type eventsService struct {
	api.UnimplementedEventsServer
	exchange *events.Exchange
	// stopping is cancelled when the daemon stops, to end subscriptions,
	// which would otherwise hold a graceful stop until its timeout.
	stopping context.Context
}

// Publish stamps the event with the daemon's time and the request's
// namespace and forwards it to the exchange.
func (s *eventsService) Publish(ctx context.Context, req *api.PublishRequest) (*emptypb.Empty, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetEvent() == nil {
		return nil, fmt.Errorf("publish %q: event is required: %w", req.GetTopic(), errdefs.ErrInvalidArgument)
	}
	env := &events.Envelope{Timestamp: time.Now().UTC(), Namespace: ns, Topic: req.GetTopic(), Event: req.GetEvent()}
	return &emptypb.Empty{}, s.exchange.Forward(ctx, env)
}

func (s *eventsService) Forward(ctx context.Context, req *api.ForwardRequest) (*emptypb.Empty, error) {
	if req.GetEnvelope() == nil {
		return nil, fmt.Errorf("forward: envelope is required: %w", errdefs.ErrInvalidArgument)
	}
	return &emptypb.Empty{}, s.exchange.Forward(ctx, convert.EnvelopeFromProto(req.GetEnvelope()))
}

// Subscribe streams events until the caller cancels or the exchange
// ends the subscription (a bad filter, a subscriber too slow), whose error
// it then returns.
func (s *eventsService) Subscribe(req *api.SubscribeRequest, stream api.Events_SubscribeServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel() // on a failed Send, ends the exchange's side
	defer context.AfterFunc(s.stopping, cancel)()
	envs, errs := s.exchange.Subscribe(ctx, req.GetFilters()...)
	// Flush the headers: the client's Subscribe returns on them, so that
	// it knows the subscription is active.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for env := range envs {
		if err := stream.Send(convert.EnvelopeToProto(env)); err != nil {
			return err
		}
	}
	err := <-errs
	if s.stopping.Err() != nil {
		return fmt.Errorf("events: the daemon is stopping: %w", errdefs.ErrUnavailable)
	}
	return err
}
