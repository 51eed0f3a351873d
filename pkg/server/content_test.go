package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	api "github.com/cri-runtime/cri-runtime/api/services/content/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// writeStream sends reqs on one Write stream, then closes it, and returns
// the first error the daemon answered with.
func writeStream(ctx context.Context, c api.ContentClient, reqs ...*api.WriteContentRequest) error {
	stream, err := c.Write(ctx)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// TestRefusedWritesLeaveNoIngest sends Write streams that are refused, or
// that only look at an unknown ref: none may leave an ingest, neither a
// record nor a directory. A stream that wrote something keeps its ingest
// for a resume.
func TestRefusedWritesLeaveNoIngest(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	c := api.NewContentClient(d.Client.Conn())
	stat := func(ref string) *api.WriteContentRequest {
		return &api.WriteContentRequest{Action: api.WriteAction_STAT, Ref: ref}
	}
	cases := []struct {
		name    string
		reqs    []*api.WriteContentRequest
		refused bool
	}{
		{"STAT of an unknown ref", []*api.WriteContentRequest{stat("unknown")}, false},
		{"unknown action", []*api.WriteContentRequest{{Action: 7, Ref: "bad-action"}}, true},
		{"negative offset", []*api.WriteContentRequest{{Action: api.WriteAction_WRITE, Ref: "bad-offset", Offset: -5, Data: []byte("x")}}, true},
		{"negative total", []*api.WriteContentRequest{{Action: api.WriteAction_STAT, Ref: "bad-total", Total: -5}}, true},
		{"STAT, then an unknown action", []*api.WriteContentRequest{stat("then-action"), {Action: 9}}, true},
		{"STAT, then a negative offset", []*api.WriteContentRequest{stat("then-offset"), {Action: api.WriteAction_WRITE, Offset: -1, Data: []byte("x")}}, true},
	}
	for _, tc := range cases {
		err := writeStream(ctx, c, tc.reqs...)
		if tc.refused != (err != nil) || (tc.refused && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("%s: %v, want refused %v (InvalidArgument)", tc.name, err, tc.refused)
		}
	}
	ingests := filepath.Join(d.Config.Root, "content", "ingest")
	check := func(want int) {
		t.Helper()
		sts, err := d.Client.ContentStore().ListStatuses(ctx)
		if err != nil || len(sts) != want {
			t.Errorf("ingest records: %v, %v; want %d", sts, err, want)
		}
		ents, err := os.ReadDir(ingests)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		var dirs []string
		for _, e := range ents {
			if e.Name()[0] != '.' {
				dirs = append(dirs, e.Name())
			}
		}
		if len(dirs) != want {
			t.Errorf("ingest directories: %v, want %d", dirs, want)
		}
	}
	check(0)

	if err := writeStream(ctx, c, stat("kept"), &api.WriteContentRequest{Action: api.WriteAction_WRITE, Data: []byte("half")}); err != nil {
		t.Fatal(err)
	}
	check(1)
}
