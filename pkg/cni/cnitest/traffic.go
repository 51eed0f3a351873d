package cnitest

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
)

// Listen opens a TCP listener on addr inside the network namespace at
// nsPath, closed when t ends. The listener can be used from any goroutine.
func Listen(t testing.TB, nsPath, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := cni.WithNetNS(nsPath, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Serve answers each connection on l with greeting, then closes it, until
// l is closed.
func Serve(l net.Listener, greeting string) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, greeting)
			c.Close()
		}
	}()
}

// Dial connects to addr over TCP from inside the network namespace at
// nsPath ("" for the host's).
func Dial(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	var c net.Conn
	err := cni.WithNetNS(nsPath, func() (err error) {
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// Fetch dials addr from nsPath and returns what the server sent before
// closing (see Serve), within 5 seconds.
func Fetch(nsPath, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, nsPath, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}
