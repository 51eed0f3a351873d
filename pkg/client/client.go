// Package client is the Go client of the daemon's management API. It dials
// the management unix socket and offers typed wrappers that mirror the
// daemon's own stores and return their domain types: a full content.Store,
// images, containers, namespaces, leases and events.
//
// The namespace of every call comes from its ctx
// (namespaces.WithNamespace), the lease from leases.WithLease. Errors come
// back with their errdefs class and the daemon's message
// (errdefs.IsNotFound works across the wire).
//
// This package imports the api and the domain packages; the daemon never
// imports it.
package client

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/cri-runtime/cri-runtime/pkg/rpc"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	containersapi "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	contentapi "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	eventsapi "github.com/cri-runtime/cri-runtime/api/services/events/v1"
	imagesapi "github.com/cri-runtime/cri-runtime/api/services/images/v1"
	leasesapi "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	namespacesapi "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Client is a connection to the daemon. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
}

// Opt configures New.
type Opt func(*options)

type options struct {
	dialOpts []grpc.DialOption
}

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Opt {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// New connects to the daemon's management socket at address (a path).
// It checks that something listens there, so that a daemon that is not
// running is reported here, as Unavailable, rather than on the first call.
func New(ctx context.Context, address string, opts ...Opt) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	address, err := filepath.Abs(address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w: %w", address, err, errdefs.ErrInvalidArgument)
	}
	var d net.Dialer
	probe, err := d.DialContext(ctx, "unix", address)
	if err != nil {
		return nil, fmt.Errorf("connect to %q: %w: %w", address, err, errdefs.ErrUnavailable)
	}
	probe.Close()
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(rpc.UnaryClientInterceptor),
		grpc.WithChainStreamInterceptor(rpc.StreamClientInterceptor),
	}, o.dialOpts...)
	conn, err := grpc.NewClient("unix://"+address, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %q: %w: %w", address, err, errdefs.ErrInvalidArgument)
	}
	return &Client{conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying connection, for services without a wrapper.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// ContentStore returns the daemon's content store of the ctx's namespace.
func (c *Client) ContentStore() content.Store {
	return &contentStore{client: contentapi.NewContentClient(c.conn)}
}

// Images returns the image records.
func (c *Client) Images() *ImageStore { return &ImageStore{client: imagesapi.NewImagesClient(c.conn)} }

// Containers returns the container records.
func (c *Client) Containers() *ContainerStore {
	return &ContainerStore{client: containersapi.NewContainersClient(c.conn)}
}

// Namespaces returns the namespaces.
func (c *Client) Namespaces() *NamespaceStore {
	return &NamespaceStore{client: namespacesapi.NewNamespacesClient(c.conn)}
}

// Leases returns the leases.
func (c *Client) Leases() *LeaseManager {
	return &LeaseManager{client: leasesapi.NewLeasesClient(c.conn)}
}

// Events returns the events service.
func (c *Client) Events() *EventService {
	return &EventService{client: eventsapi.NewEventsClient(c.conn)}
}

// DeleteOpt configures the deletion of an image or a lease.
type DeleteOpt func(*deleteOptions)

type deleteOptions struct {
	sync bool
}

// SynchronousDelete makes a deletion return only after a garbage
// collection has removed what only the deleted record held.
func SynchronousDelete() DeleteOpt {
	return func(o *deleteOptions) { o.sync = true }
}

func deleteOpts(opts []DeleteOpt) deleteOptions {
	var o deleteOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
