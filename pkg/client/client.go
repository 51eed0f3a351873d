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
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/rpc"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
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
	conn    *grpc.ClientConn
	address string
}

// DefaultConnectTimeout bounds how long New waits for the daemon to answer
// the connection's handshake.
const DefaultConnectTimeout = 3 * time.Second

// Opt configures New.
type Opt func(*options)

type options struct {
	dialOpts       []grpc.DialOption
	connectTimeout time.Duration
}

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Opt {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithConnectTimeout bounds how long New waits for the daemon to answer,
// DefaultConnectTimeout unless set; 0 waits as long as New's ctx allows.
func WithConnectTimeout(d time.Duration) Opt {
	return func(o *options) { o.connectTimeout = d }
}

// New connects to the daemon's management socket at address (a path) and
// waits for the daemon to answer the connection's handshake, so that a
// daemon that is not running, or not answering (stopped with SIGSTOP,
// say), is reported here as Unavailable, naming the socket, rather than
// by a first call that hangs.
func New(ctx context.Context, address string, opts ...Opt) (*Client, error) {
	o := options{connectTimeout: DefaultConnectTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	address, err := filepath.Abs(address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w: %w", address, err, errdefs.ErrInvalidArgument)
	}
	if o.connectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.connectTimeout)
		defer cancel()
	}
	// A plain dial first: nothing listening is known at once.
	var d net.Dialer
	probe, err := d.DialContext(ctx, "unix", address)
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon at %q: %w: %w", address, err, errdefs.ErrUnavailable)
	}
	probe.Close()
	c := &Client{address: address}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Outermost, so that it sees the errors with their class.
		grpc.WithChainUnaryInterceptor(c.unaryGone, rpc.UnaryClientInterceptor),
		grpc.WithChainStreamInterceptor(c.streamGone, rpc.StreamClientInterceptor),
	}, o.dialOpts...)
	if c.conn, err = grpc.NewClient("unix://"+address, dialOpts...); err != nil {
		return nil, fmt.Errorf("connect to the daemon at %q: %w: %w", address, err, errdefs.ErrInvalidArgument)
	}
	if err := c.waitReady(ctx); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// waitReady waits until the connection has completed its handshake with
// the daemon.
func (c *Client) waitReady(ctx context.Context) error {
	c.conn.Connect()
	for {
		st := c.conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return fmt.Errorf("connect to the daemon at %q: connection %s: %w", c.address, st, errdefs.ErrUnavailable)
		}
		if !c.conn.WaitForStateChange(ctx, st) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("connect to the daemon at %q: it accepted the connection but did not answer in time (stopped or overloaded): %w", c.address, errdefs.ErrUnavailable)
			}
			return fmt.Errorf("connect to the daemon at %q: %w", c.address, ctx.Err())
		}
	}
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
