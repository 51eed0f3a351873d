package client_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	contenttestsuite "github.com/cri-runtime/cri-runtime/pkg/content/testsuite"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

func noMetrics(c *server.Config) { c.Metrics.Address = "" }

// TestContentStoreOverGRPC runs the content testsuite against the client's
// content.Store, each case on a fresh daemon. The case's ctx carries a
// lease, as every real writer's does: unreferenced blobs are garbage.
func TestContentStoreOverGRPC(t *testing.T) {
	contenttestsuite.Run(t, "grpc", func(ctx context.Context, t *testing.T) (context.Context, content.Store) {
		d := servertest.Start(t, noMetrics)
		ctx = namespaces.WithNamespace(ctx, "testsuite")
		l, err := d.Client.Leases().Create(ctx)
		if err != nil {
			t.Fatalf("lease: %v", err)
		}
		return leases.WithLease(ctx, l.ID), d.Client.ContentStore()
	})
}

func TestErrorsKeepClassAndMessage(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := namespaces.WithNamespace(context.Background(), "errors")

	_, err := d.Client.Images().Get(ctx, "docker.io/library/nope:1")
	if !errdefs.IsNotFound(err) {
		t.Fatalf("Get of a missing image: %v, want NotFound", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"docker.io/library/nope:1"`) || strings.Count(msg, "not found") != 1 || strings.Contains(msg, "rpc error") {
		t.Fatalf("message %q: want the daemon's message, naming the image, with the class once", msg)
	}

	_, err = d.Client.Images().List(context.Background())
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("call without a namespace: %v, want InvalidArgument about the namespace", err)
	}
	_, err = d.Client.Images().List(namespaces.WithNamespace(context.Background(), "bad/ns"))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "bad/ns") {
		t.Fatalf("call in a malformed namespace: %v, want InvalidArgument naming it", err)
	}

	if err := d.Client.Namespaces().Create(ctx, "twice", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Client.Namespaces().Create(ctx, "twice", nil); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second Create: %v, want AlreadyExists", err)
	}

	_, err = d.Client.ContentStore().Info(ctx, "sha256:zzz")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "sha256:zzz") {
		t.Fatalf("Info of a malformed digest: %v, want InvalidArgument naming it", err)
	}
	_, err = d.Client.Images().List(ctx, `name==`)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `name==`) {
		t.Fatalf("List with a malformed filter: %v, want InvalidArgument naming it", err)
	}
}

func TestNewReportsMissingDaemon(t *testing.T) {
	_, err := client.New(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("New without a daemon: %v, want Unavailable naming the socket", err)
	}
}

// withLease returns ctx with a new lease, as every real writer uses so
// that its blobs are not garbage before an image refers to them, and a
// function that deletes the lease.
func withLease(t *testing.T, c *client.Client, ctx context.Context) (context.Context, func()) {
	t.Helper()
	l, err := c.Leases().Create(ctx, client.WithExpiration(time.Hour))
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return leases.WithLease(ctx, l.ID), func() {
		if err := c.Leases().Delete(ctx, l); err != nil {
			t.Fatalf("delete lease: %v", err)
		}
	}
}

// writeBlob commits b in the namespace of ctx and returns its descriptor.
func writeBlob(t *testing.T, ctx context.Context, cs content.Store, b []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(ctx, cs, "ingest-"+desc.Digest.Encoded(), bytes.NewReader(b), desc); err != nil {
		t.Fatalf("WriteBlob: %v", err)
	}
	return desc
}

func TestNamespaceIsolation(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	c := d.Client
	ns1 := namespaces.WithNamespace(context.Background(), "ns1")
	ns2 := namespaces.WithNamespace(context.Background(), "ns2")
	if err := c.Namespaces().Create(ns2, "ns2", nil); err != nil {
		t.Fatal(err)
	}

	leased, done := withLease(t, c, ns1)
	desc := writeBlob(t, leased, c.ContentStore(), []byte(`{"schemaVersion":2}`))
	if _, err := c.Images().Create(leased, meta.Image{Name: "example.com/app:1", Target: desc}); err != nil {
		t.Fatalf("Create image: %v", err)
	}
	done()
	if _, err := c.Images().Get(ns1, "example.com/app:1"); err != nil {
		t.Fatalf("image in its own namespace: %v", err)
	}

	if _, err := c.Images().Get(ns2, "example.com/app:1"); !errdefs.IsNotFound(err) {
		t.Fatalf("image of ns1 seen from ns2: %v", err)
	}
	if imgs, err := c.Images().List(ns2); err != nil || len(imgs) != 0 {
		t.Fatalf("images of ns2: %v, %v", imgs, err)
	}
	if _, err := c.ContentStore().Info(ns2, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("blob of ns1 seen from ns2: %v", err)
	}
	if _, err := c.ContentStore().ReaderAt(ns2, desc); !errdefs.IsNotFound(err) {
		t.Fatalf("blob of ns1 readable from ns2: %v", err)
	}
	var seen []digest.Digest
	c.ContentStore().Walk(ns2, func(i content.Info) error { seen = append(seen, i.Digest); return nil })
	if len(seen) != 0 {
		t.Fatalf("ns2 walks %v", seen)
	}

	// ns1 cannot go while it holds anything.
	err := c.Namespaces().Delete(ns2, "ns1")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "ns1") {
		t.Fatalf("Delete of ns1 with an image and a blob: %v, want FailedPrecondition naming it", err)
	}
	if err := c.Images().Delete(ns1, "example.com/app:1"); err != nil {
		t.Fatal(err)
	}
	// Unreferenced now, the blob may already be collected.
	if err := c.ContentStore().Delete(ns1, desc.Digest); err != nil && !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	if err := c.Namespaces().Delete(ns2, "ns1"); err != nil {
		t.Fatalf("Delete of the emptied ns1: %v", err)
	}
	list, err := c.Namespaces().List(ns2)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(n meta.Namespace) bool { return n.Name == "ns1" }) {
		t.Fatalf("ns1 still listed: %v", list)
	}
}

func TestEventsSeeImageCreate(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := namespaces.WithNamespace(context.Background(), "events")
	sub, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	envs, errs := d.Client.Events().Subscribe(sub, `topic=="/images/create"`)

	leased, done := withLease(t, d.Client, ctx)
	desc := writeBlob(t, leased, d.Client.ContentStore(), []byte("{}"))
	if _, err := d.Client.Images().Create(leased, meta.Image{Name: "example.com/ev:1", Target: desc, Labels: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	done()
	select {
	case env := <-envs:
		if env.Topic != "/images/create" || env.Namespace != "events" || env.Timestamp.IsZero() {
			t.Fatalf("envelope %+v", env)
		}
		var ev eventsv1.ImageCreate
		if err := env.Event.UnmarshalTo(&ev); err != nil {
			t.Fatalf("payload %v: %v", env.Event.GetTypeUrl(), err)
		}
		if ev.GetName() != "example.com/ev:1" || ev.GetLabels()["k"] != "v" {
			t.Fatalf("payload %+v", &ev)
		}
	case err := <-errs:
		t.Fatalf("subscription ended: %v", err)
	case <-sub.Done():
		t.Fatal("no /images/create event")
	}

	// Publish through the service reaches subscribers too; bad filters are
	// InvalidArgument.
	if err := d.Client.Events().Publish(ctx, "/images/create", &eventsv1.ImageCreate{Name: "published"}); err != nil {
		t.Fatal(err)
	}
	if env := <-envs; env.Namespace != "events" {
		t.Fatalf("published envelope %+v", env)
	}
	_, badErrs := d.Client.Events().Subscribe(ctx, `topic==`)
	if err := <-badErrs; !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Subscribe with a bad filter: %v", err)
	}
	cancel()
	for range envs {
	}
	if err := <-errs; err != nil {
		t.Fatalf("cancelled subscription: %v, want nil", err)
	}
}

func TestLeases(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := namespaces.WithNamespace(context.Background(), "leases")
	lm := d.Client.Leases()
	l, err := lm.Create(ctx, client.WithLeaseID("pull-1"), client.WithLeaseLabels(map[string]string{"who": "test"}), client.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "pull-1" || l.Labels["who"] != "test" || l.ExpiresAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("lease %+v", l)
	}
	if anon, err := lm.Create(ctx); err != nil || anon.ID == "" {
		t.Fatalf("lease without an ID: %+v, %v", anon, err)
	}
	if _, err := lm.Create(ctx, client.WithLeaseID("pull-1")); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second lease pull-1: %v", err)
	}
	if _, err := lm.Create(ctx, client.WithLeaseID("bad id")); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "bad id") {
		t.Fatalf("lease with a bad ID: %v", err)
	}
	list, err := lm.List(ctx, "id==pull-1")
	if err != nil || len(list) != 1 || list[0].ID != "pull-1" {
		t.Fatalf("List(id==pull-1) = %v, %v", list, err)
	}

	desc := writeBlob(t, leases.WithLease(ctx, l.ID), d.Client.ContentStore(), []byte("held"))
	res := meta.Resource{ID: desc.Digest.String(), Type: "content"}
	if err := lm.AddResource(ctx, l, res); err != nil {
		t.Fatal(err)
	}
	got, err := lm.ListResources(ctx, l)
	if err != nil || !slices.Contains(got, res) {
		t.Fatalf("ListResources = %v, %v", got, err)
	}
	if err := lm.DeleteResource(ctx, l, res); err != nil {
		t.Fatal(err)
	}
	if err := lm.Delete(ctx, l, client.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if err := lm.Delete(ctx, l); !errdefs.IsNotFound(err) {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestContainers(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := namespaces.WithNamespace(context.Background(), "containers")
	cs := d.Client.Containers()
	c, err := cs.Create(ctx, meta.Container{
		ID:      "c1",
		Image:   "example.com/app:1",
		Runtime: meta.Runtime{Name: "runc", Options: []byte{1, 2}},
		Spec:    []byte(`{"ociVersion":"1.2.0"}`),
		Labels:  map[string]string{"app": "web"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.CreatedAt.IsZero() || string(c.Runtime.Options) != "\x01\x02" {
		t.Fatalf("created %+v", c)
	}
	c.Labels = map[string]string{"app": "db"}
	if c, err = cs.Update(ctx, c, "labels.app"); err != nil || c.Labels["app"] != "db" {
		t.Fatalf("Update = %+v, %v", c, err)
	}
	if list, err := cs.List(ctx, "labels.app==db"); err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := cs.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Get(ctx, "c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v", err)
	}
}

func TestNamespaceLabels(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := context.Background()
	ns := d.Client.Namespaces()
	if err := ns.Create(ctx, "labelled", map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetLabel(ctx, "labelled", "a", "one"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetLabel(ctx, "labelled", "b", ""); err != nil {
		t.Fatal(err)
	}
	got, err := ns.Get(ctx, "labelled")
	if err != nil || len(got.Labels) != 1 || got.Labels["a"] != "one" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := ns.Get(ctx, "nothing"); !errdefs.IsNotFound(err) {
		t.Fatalf("Get of a missing namespace: %v", err)
	}
}

// TestNewFailsFast guards the CLI against hanging on a daemon that is not
// there (no socket, or a socket nobody listens on) or not answering (a
// stopped process, whose socket the kernel still accepts on): New fails
// within its connect timeout, as Unavailable, naming the socket.
func TestNewFailsFast(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	silent := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and says nothing, as a stopped daemon's kernel does
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, c := range []struct {
		address string
		within  time.Duration
	}{{missing, 100 * time.Millisecond}, {silent, 2 * time.Second}} {
		start := time.Now()
		cl, err := client.New(context.Background(), c.address, client.WithConnectTimeout(500*time.Millisecond))
		took := time.Since(start)
		if err == nil {
			cl.Close()
		}
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), c.address) {
			t.Errorf("New(%s): %v, want Unavailable naming the socket", c.address, err)
		}
		if took > c.within {
			t.Errorf("New(%s) took %v, want under %v", c.address, took, c.within)
		}
	}
}

// TestCallToStoppedDaemonNamesIt guards against a bare transport error
// ("error reading from server: EOF") when the daemon has gone: the error
// says that the daemon at its socket stopped, and stays Unavailable. A
// daemon that refuses a call as Unavailable is not reported as stopped.
func TestCallToStoppedDaemonNamesIt(t *testing.T) {
	d := servertest.Start(t, noMetrics)
	ctx := namespaces.WithNamespace(context.Background(), "gone")
	w, err := d.Client.ContentStore().Writer(ctx, content.WithRef("held"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Client.ContentStore().Writer(ctx, content.WithRef("held"))
	if !errdefs.IsUnavailable(err) || strings.Contains(err.Error(), "stopped") {
		t.Fatalf("second writer of a held ref: %v, want Unavailable from a running daemon", err)
	}
	w.Close()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = d.Client.Namespaces().List(ctx)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "daemon at") || !strings.Contains(err.Error(), d.Config.GRPC.Address) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("call after the daemon stopped: %v, want Unavailable saying the daemon at its socket stopped", err)
	}
}
