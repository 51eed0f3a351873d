package remote

import (
	"context"
	"fmt"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Credential is the credential of one registry: a username and password,
// or an identity (refresh) token, or a registry (access) token, as the
// CRI's AuthConfig carries them.
type Credential = auth.Credential

// StaticCredentials gives cred to the endpoints of registry host only:
// host itself and, for "docker.io", "registry-1.docker.io". Mirrors
// configured in hosts.toml get nothing from it, so that credentials meant
// for one registry are not sent to another.
func StaticCredentials(host string, cred Credential) auth.CredentialFunc {
	return func(_ context.Context, hostport string) (auth.Credential, error) {
		if hostport == host || (host == "docker.io" && hostport == "registry-1.docker.io") {
			return cred, nil
		}
		return auth.EmptyCredential, nil
	}
}

// DockerConfigCredentials reads credentials from a Docker config file
// (config.json: "auths", "credsStore", "credHelpers"); path "" is the
// default one ($DOCKER_CONFIG/config.json or ~/.docker/config.json). A
// missing file means no credentials; an unreadable one is InvalidArgument
// naming the file. For the CLI; the daemon takes the CRI request's.
func DockerConfigCredentials(path string) (auth.CredentialFunc, error) {
	var (
		store *credentials.DynamicStore
		err   error
	)
	if path == "" {
		store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
	} else {
		store, err = credentials.NewStore(path, credentials.StoreOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("docker config %q: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return credentials.Credential(store), nil
}

// ChainCredentials asks each fn in turn and returns the first credential
// that is not empty.
func ChainCredentials(fns ...auth.CredentialFunc) auth.CredentialFunc {
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		for _, fn := range fns {
			if fn == nil {
				continue
			}
			cred, err := fn(ctx, hostport)
			if err != nil {
				return auth.EmptyCredential, err
			}
			if cred != auth.EmptyCredential {
				return cred, nil
			}
		}
		return auth.EmptyCredential, nil
	}
}
