package cri

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// GetContainerEvents streams the lifecycle events of the containers of the
// k8s.io namespace: created, started, stopped, deleted, each with the
// status of its pod and containers (kubelet's evented PLEG). The stream
// is fed from the event exchange: a client that falls too far behind is
// dropped, and relists, as kubelet does.
func (s *Service) GetContainerEvents(req *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	ctx := stream.Context()
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	var fs []string // one per topic: a filter's terms are ANDed, filters ORed
	for _, t := range []string{shimapi.TopicStart, shimapi.TopicExit, "/containers/create", "/containers/delete"} {
		fs = append(fs, fmt.Sprintf("namespace==%q,topic==%q", ns, t))
	}
	envs, errs := s.exchange.Subscribe(ctx, fs...)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			if ok && err != nil {
				return err
			}
			return nil
		case env, ok := <-envs:
			if !ok {
				return nil
			}
			ev, id := containerEvent(env.Topic, env.Event.GetValue())
			if id == "" {
				continue
			}
			resp := &runtime.ContainerEventResponse{ContainerId: id, ContainerEventType: ev, CreatedAt: env.Timestamp.UnixNano()}
			if c, err := s.container(ctx, id); err == nil {
				resp.ContainersStatuses = []*runtime.ContainerStatus{s.containerStatus(ctx, c)}
				if pod, err := s.pod(ctx, c.SandboxID); err == nil {
					resp.PodSandboxStatus, _, _ = s.podStatus(pod)
				}
			} else if _, err := s.db.Sandboxes().Get(ctx, id); err == nil {
				continue // the pause container's events are no container's
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// containerEvent maps an exchange event to a CRI one and its container.
func containerEvent(topic string, payload []byte) (runtime.ContainerEventType, string) {
	switch topic {
	case "/containers/create":
		var e eventsv1.ContainerCreate
		if unmarshal(payload, &e) {
			return runtime.ContainerEventType_CONTAINER_CREATED_EVENT, e.GetId()
		}
	case "/containers/delete":
		var e eventsv1.ContainerDelete
		if unmarshal(payload, &e) {
			return runtime.ContainerEventType_CONTAINER_DELETED_EVENT, e.GetId()
		}
	case shimapi.TopicStart:
		var e eventsv1.TaskStart
		if unmarshal(payload, &e) {
			return runtime.ContainerEventType_CONTAINER_STARTED_EVENT, e.GetContainerId()
		}
	case shimapi.TopicExit:
		var e eventsv1.TaskExit
		if unmarshal(payload, &e) && e.GetId() == e.GetContainerId() {
			return runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, e.GetContainerId()
		}
	}
	return 0, ""
}

func unmarshal(b []byte, m proto.Message) bool { return proto.Unmarshal(b, m) == nil }
