package client

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// A call that fails as Unavailable may have been refused by a daemon that
// is running (a ref being written by another client, say), or have lost
// its daemon: stopped, killed, its connection cut. The second kind reaches
// the caller as a bare transport error ("error reading from server: EOF");
// the interceptors below tell the two apart by dialling the socket again,
// and name the daemon in the second case. The class stays Unavailable.

// gone returns err, saying that the daemon stopped when err is Unavailable
// and nothing answers on the socket any more.
func (c *Client) gone(err error) error {
	if !errdefs.IsUnavailable(err) || c.listening() {
		return err
	}
	return fmt.Errorf("daemon at %q stopped or unavailable: %w", c.address, err)
}

// listening reports whether something accepts connections on the socket.
func (c *Client) listening() bool {
	conn, err := net.DialTimeout("unix", c.address, 500*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (c *Client) unaryGone(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return c.gone(invoker(ctx, method, req, reply, cc, opts...))
}

func (c *Client) streamGone(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, c.gone(err)
	}
	return &goneStream{ClientStream: s, c: c}, nil
}

type goneStream struct {
	grpc.ClientStream
	c *Client
}

func (s *goneStream) SendMsg(m any) error { return s.c.gone(s.ClientStream.SendMsg(m)) }
func (s *goneStream) RecvMsg(m any) error { return s.c.gone(s.ClientStream.RecvMsg(m)) }
func (s *goneStream) CloseSend() error    { return s.c.gone(s.ClientStream.CloseSend()) }
