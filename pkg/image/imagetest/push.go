package imagetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// pushTimeout bounds one Push.
const pushTimeout = time.Minute

// PushOpt configures Push.
type PushOpt func(*auth.Client)

// WithBasicAuth pushes as BasicAuthUsername (see
// StartRegistryWithBasicAuth).
func WithBasicAuth() PushOpt {
	return func(c *auth.Client) {
		c.Credential = func(context.Context, string) (auth.Credential, error) {
			return auth.Credential{Username: BasicAuthUsername, Password: BasicAuthPassword}, nil
		}
	}
}

// Push writes every blob of b to the registry at host (plain HTTP) in
// repository repo and tags the target with tag ("" for no tag: the target
// is then reachable by digest only). It uses oras-go, independently of
// the code under test.
func Push(t testing.TB, host, repo, tag string, b Built, opts ...PushOpt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	r, err := remote.NewRepository(host + "/" + repo)
	if err != nil {
		t.Fatalf("push to %s/%s: %v", host, repo, err)
	}
	r.PlainHTTP = true
	client := &auth.Client{Cache: auth.NewCache()}
	for _, o := range opts {
		o(client)
	}
	r.Client = client
	ctx = auth.AppendRepositoryScope(ctx, registry.Reference{Registry: host, Repository: repo}, auth.ActionPull, auth.ActionPush)
	for _, bl := range b.Blobs {
		desc := bl.Desc
		desc.Platform = nil
		if err := r.Push(ctx, desc, bytes.NewReader(bl.Data)); err != nil {
			t.Fatalf("push %s %s to %s/%s: %v", desc.MediaType, desc.Digest, host, repo, err)
		}
	}
	if tag != "" {
		if err := r.Tag(ctx, b.Target, tag); err != nil {
			t.Fatalf("tag %s/%s:%s: %v", host, repo, tag, err)
		}
	}
}
