package cri

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamChunk is how many items each message of a Stream* list carries:
// well under gRPC's message size limit whatever the node holds.
const streamChunk = 100

// sendChunks sends items in messages of at most streamChunk, at least one
// message (an empty list is one empty message).
func sendChunks[T any, R any](items []T, wrap func([]T) *R, send func(*R) error) error {
	for len(items) > streamChunk {
		if err := send(wrap(items[:streamChunk])); err != nil {
			return err
		}
		items = items[streamChunk:]
	}
	return send(wrap(items))
}

// StreamPodSandboxes is ListPodSandbox in chunks.
func (s *Service) StreamPodSandboxes(req *runtime.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	list, err := s.ListPodSandbox(stream.Context(), &runtime.ListPodSandboxRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(list.GetItems(), func(c []*runtime.PodSandbox) *runtime.StreamPodSandboxesResponse {
		return &runtime.StreamPodSandboxesResponse{PodSandboxes: c}
	}, stream.Send)
}

// StreamContainers is ListContainers in chunks.
func (s *Service) StreamContainers(req *runtime.StreamContainersRequest, stream grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	list, err := s.ListContainers(stream.Context(), &runtime.ListContainersRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(list.GetContainers(), func(c []*runtime.Container) *runtime.StreamContainersResponse {
		return &runtime.StreamContainersResponse{Containers: c}
	}, stream.Send)
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *Service) StreamContainerStats(req *runtime.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	list, err := s.ListContainerStats(stream.Context(), &runtime.ListContainerStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(list.GetStats(), func(c []*runtime.ContainerStats) *runtime.StreamContainerStatsResponse {
		return &runtime.StreamContainerStatsResponse{ContainerStats: c}
	}, stream.Send)
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *Service) StreamPodSandboxStats(req *runtime.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	list, err := s.ListPodSandboxStats(stream.Context(), &runtime.ListPodSandboxStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(list.GetStats(), func(c []*runtime.PodSandboxStats) *runtime.StreamPodSandboxStatsResponse {
		return &runtime.StreamPodSandboxStatsResponse{PodSandboxStats: c}
	}, stream.Send)
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Service) StreamPodSandboxMetrics(req *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	list, err := s.ListPodSandboxMetrics(stream.Context(), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunks(list.GetPodMetrics(), func(c []*runtime.PodSandboxMetrics) *runtime.StreamPodSandboxMetricsResponse {
		return &runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: c}
	}, stream.Send)
}

// StreamImages is ListImages in chunks.
func (s *Service) StreamImages(req *runtime.StreamImagesRequest, stream grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	list, err := s.ListImages(stream.Context(), &runtime.ListImagesRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(list.GetImages(), func(c []*runtime.Image) *runtime.StreamImagesResponse {
		return &runtime.StreamImagesResponse{Images: c}
	}, stream.Send)
}
