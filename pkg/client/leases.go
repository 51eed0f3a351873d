package client

import (
	"context"
	"time"

	api "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// LeaseManager mirrors meta.LeaseManager over the leases service.
type LeaseManager struct {
	client api.LeasesClient
}

// LeaseOpt configures a lease to create.
type LeaseOpt func(*api.CreateRequest)

// WithLeaseID names the lease; without it the daemon picks an ID.
func WithLeaseID(id string) LeaseOpt { return func(r *api.CreateRequest) { r.Id = id } }

// WithLeaseLabels sets the lease's labels.
func WithLeaseLabels(labels map[string]string) LeaseOpt {
	return func(r *api.CreateRequest) { r.Labels = labels }
}

// WithExpiration makes the lease expire d after its creation.
func WithExpiration(d time.Duration) LeaseOpt {
	return func(r *api.CreateRequest) { r.Expire = convert.Duration(d) }
}

// Create creates a lease.
func (m *LeaseManager) Create(ctx context.Context, opts ...LeaseOpt) (meta.Lease, error) {
	req := &api.CreateRequest{}
	for _, opt := range opts {
		opt(req)
	}
	resp, err := m.client.Create(ctx, req)
	if err != nil {
		return meta.Lease{}, err
	}
	return convert.LeaseFromProto(resp.GetLease()), nil
}

// Delete removes the lease; NotFound if absent.
func (m *LeaseManager) Delete(ctx context.Context, l meta.Lease, opts ...DeleteOpt) error {
	_, err := m.client.Delete(ctx, &api.DeleteRequest{Id: l.ID, Sync: deleteOpts(opts).sync})
	return err
}

// List returns the leases matching any of filters.
func (m *LeaseManager) List(ctx context.Context, filters ...string) ([]meta.Lease, error) {
	resp, err := m.client.List(ctx, &api.ListRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	list := make([]meta.Lease, 0, len(resp.GetLeases()))
	for _, l := range resp.GetLeases() {
		list = append(list, convert.LeaseFromProto(l))
	}
	return list, nil
}

// AddResource makes the lease hold r.
func (m *LeaseManager) AddResource(ctx context.Context, l meta.Lease, r meta.Resource) error {
	_, err := m.client.AddResource(ctx, &api.AddResourceRequest{Id: l.ID, Resource: convert.ResourceToProto(r)})
	return err
}

// DeleteResource makes the lease stop holding r.
func (m *LeaseManager) DeleteResource(ctx context.Context, l meta.Lease, r meta.Resource) error {
	_, err := m.client.DeleteResource(ctx, &api.DeleteResourceRequest{Id: l.ID, Resource: convert.ResourceToProto(r)})
	return err
}

// ListResources returns what the lease holds.
func (m *LeaseManager) ListResources(ctx context.Context, l meta.Lease) ([]meta.Resource, error) {
	resp, err := m.client.ListResources(ctx, &api.ListResourcesRequest{Id: l.ID})
	if err != nil {
		return nil, err
	}
	list := make([]meta.Resource, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		list = append(list, convert.ResourceFromProto(r))
	}
	return list, nil
}
