// Package remote resolves image references and fetches blobs from
// registries that speak the OCI distribution API.
//
// A Resolver turns a reference into a descriptor (Resolve) and gives
// Fetchers that read blobs by descriptor, resuming from an offset with
// HTTP Range requests. Each registry host maps to a list of endpoints
// (HostsFunc): the mirrors of containerd's hosts.toml layout first, then
// the server, each with its own TLS settings and capabilities. Every
// endpoint is tried in order; errors name every endpoint tried.
//
// Transport and auth are oras-go's (registry/remote/auth): its Client
// answers basic and bearer-token challenges with credentials from a
// CredentialFunc (the CRI request's, or a Docker config file via
// registry/remote/credentials) and caches tokens across calls. The URLs,
// Accept headers, Range requests and size checks are done here, because
// mirrors with a path prefix and resumable fetches need that control.
//
// HTTP errors map onto errdefs classes (see statusClass): 404 is
// NotFound, 401/403 FailedPrecondition, 429/5xx and network errors
// Unavailable.
//
// This package imports errdefs, image (media types, limits) and
// image/reference of the project.
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
)

// DefaultUserAgent is the User-Agent of requests when Options has none.
const DefaultUserAgent = "cri-runtime"

// Options configure a Resolver. The zero value works: no hosts.toml, no
// credentials, plain HTTP for loopback hosts only.
type Options struct {
	// Hosts gives the endpoints of a registry host. Nil: HostsDir(ConfigPath, PlainHTTP).
	Hosts HostsFunc
	// ConfigPath is the hosts.toml directory (containerd's config_path,
	// e.g. "/etc/cri-runtime/certs.d"); "" for none. Used when Hosts is nil.
	ConfigPath string
	// Credentials returns the credentials for an endpoint host (host:port
	// as connected to, "registry-1.docker.io" for docker.io). Nil: none.
	Credentials auth.CredentialFunc
	// PlainHTTP tells which registry hosts without a hosts.toml server
	// (or mirror URL without a scheme) are spoken to over plain HTTP.
	// Nil: IsLocalhost.
	PlainHTTP func(host string) bool
	// UserAgent of every request. "": DefaultUserAgent.
	UserAgent string
	// Client is the base HTTP client; endpoints with TLS settings get a
	// clone of its transport, which must then be an *http.Transport. Its
	// Timeout, if set, bounds whole blob downloads: leave it 0 and bound
	// calls with ctx. Nil: a client over a clone of http.DefaultTransport.
	Client *http.Client
}

// Resolver resolves references and makes fetchers. It is safe for
// concurrent use and meant to be long-lived: it caches auth tokens and
// per-endpoint transports.
type Resolver struct {
	hosts       HostsFunc
	credentials auth.CredentialFunc
	userAgent   string
	base        *http.Client
	cache       auth.Cache

	mu         sync.Mutex                   // guards transports
	transports map[string]http.RoundTripper // by transportKey
}

// NewResolver returns a Resolver with opts.
func NewResolver(opts Options) *Resolver {
	r := &Resolver{
		hosts:       opts.Hosts,
		credentials: opts.Credentials,
		userAgent:   opts.UserAgent,
		base:        opts.Client,
		cache:       auth.NewCache(),
		transports:  map[string]http.RoundTripper{},
	}
	if r.hosts == nil {
		plain := opts.PlainHTTP
		if plain == nil {
			plain = IsLocalhost
		}
		r.hosts = HostsDir(opts.ConfigPath, plain)
	}
	if r.userAgent == "" {
		r.userAgent = DefaultUserAgent
	}
	if r.base == nil {
		r.base = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return r
}

// Resolve resolves ref (familiar or normalised; a digest wins over a tag)
// on the endpoints of its domain that can resolve, in order, and returns
// the normalised name and the descriptor of the manifest or index.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	what := fmt.Sprintf("resolve %s", named)
	eps, err := r.endpoints(ctx, named.Domain, CapabilityResolve)
	if err != nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	var errs hostErrors
	for _, ep := range eps {
		desc, err := r.resolveAt(ctx, ep, named)
		if err == nil {
			return named.String(), desc, nil
		}
		if ctx.Err() != nil {
			return "", ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		klog.FromContext(ctx).V(2).Info("Registry endpoint failed, trying the next", "image", named.String(), "endpoint", ep.String(), "err", err)
		errs.add(ep, err)
	}
	return "", ocispec.Descriptor{}, errs.err(what)
}

// Fetcher returns a fetcher for the repository of name (as returned by
// Resolve) that tries the endpoints of its domain that can pull.
func (r *Resolver) Fetcher(ctx context.Context, name string) (*Fetcher, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, err
	}
	eps, err := r.endpoints(ctx, named.Domain, CapabilityPull)
	if err != nil {
		return nil, fmt.Errorf("fetcher for %s: %w", named.Name(), err)
	}
	return &Fetcher{r: r, ref: named, endpoints: eps}, nil
}

// endpoints returns the endpoints of host with capability c.
func (r *Resolver) endpoints(ctx context.Context, host string, c Capabilities) ([]Endpoint, error) {
	all, err := r.hosts(ctx, host)
	if err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, ep := range all {
		if ep.Capabilities.Has(c) {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("registry %s: no endpoint can %s: %w", host, capabilityName(c), errdefs.ErrFailedPrecondition)
	}
	return eps, nil
}

func capabilityName(c Capabilities) string {
	switch c {
	case CapabilityPull:
		return "pull"
	case CapabilityResolve:
		return "resolve"
	}
	return "push"
}

// do sends a request for /<repo>/<kind>/<object> under ep's API root
// through the auth client, with a pull scope hint for the repository.
func (r *Resolver) do(ctx context.Context, ep Endpoint, repo, method, kind, object string, header http.Header) (*http.Response, error) {
	client, err := r.client(ep)
	if err != nil {
		return nil, err
	}
	ctx = auth.AppendScopesForHost(ctx, ep.Host, auth.ScopeRepository(repo, auth.ActionPull))
	url := ep.Scheme + "://" + ep.Host + ep.Path + "/" + repo + "/" + kind + "/" + object
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %w", method, url, err, errdefs.ErrInvalidArgument)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	return resp, nil
}

// client is the auth client of ep: its transport, its headers, the
// resolver's credentials and token cache.
func (r *Resolver) client(ep Endpoint) (*auth.Client, error) {
	rt, err := r.transport(ep)
	if err != nil {
		return nil, err
	}
	hc := *r.base
	hc.Transport = rt
	header := ep.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("User-Agent", r.userAgent)
	return &auth.Client{Client: &hc, Header: header, Credential: r.credentials, Cache: r.cache}, nil
}

// transport returns the cached transport for ep's TLS and dial settings,
// building it on first use.
func (r *Resolver) transport(ep Endpoint) (http.RoundTripper, error) {
	tlsCfg := ep.TLS
	if ep.Scheme != "https" {
		tlsCfg = TLSConfig{}
	}
	if len(tlsCfg.CAFiles) == 0 && len(tlsCfg.ClientPairs) == 0 && !tlsCfg.SkipVerify && ep.DialTimeout == 0 {
		if r.base.Transport == nil {
			return http.DefaultTransport, nil
		}
		return r.base.Transport, nil
	}
	key := fmt.Sprintf("%q|%q|%v|%v", tlsCfg.CAFiles, tlsCfg.ClientPairs, tlsCfg.SkipVerify, ep.DialTimeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.transports[key]; ok {
		return rt, nil
	}
	rt, err := r.buildTransport(tlsCfg, ep.DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", ep, err)
	}
	r.transports[key] = rt
	return rt, nil
}

func (r *Resolver) buildTransport(cfg TLSConfig, dialTimeout time.Duration) (*http.Transport, error) {
	var tr *http.Transport
	switch base := r.base.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = base.Clone()
	default:
		return nil, fmt.Errorf("TLS settings need an *http.Transport, the client has a %T: %w", base, errdefs.ErrFailedPrecondition)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr.TLSClientConfig != nil {
		tc = tr.TLSClientConfig.Clone()
	}
	tc.InsecureSkipVerify = cfg.SkipVerify //nolint:gosec // asked for by skip_verify in hosts.toml
	if len(cfg.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range cfg.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("ca %s: %w: %w", f, err, errdefs.ErrFailedPrecondition)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca %s: no PEM certificate: %w", f, errdefs.ErrInvalidArgument)
			}
		}
		tc.RootCAs = pool
	}
	for _, pair := range cfg.ClientPairs {
		key := pair[1]
		if key == "" {
			key = pair[0]
		}
		cert, err := tls.LoadX509KeyPair(pair[0], key)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w: %w", pair[0], err, errdefs.ErrInvalidArgument)
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	tr.TLSClientConfig = tc
	if dialTimeout > 0 {
		tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return tr, nil
}

// acceptManifests is the Accept header of manifest requests: the known
// types first, then anything (a registry may refuse a request that accepts
// none of an artifact's types).
func acceptManifests() http.Header {
	return http.Header{"Accept": {strings.Join(image.ManifestMediaTypes(), ", ") + ", */*;q=0.8"}}
}

// resolveAt resolves named on ep: a HEAD for the headers, and a GET of the
// manifest when the registry refuses HEAD or leaves out the digest, type
// or length.
func (r *Resolver) resolveAt(ctx context.Context, ep Endpoint, named reference.Reference) (ocispec.Descriptor, error) {
	resp, err := r.do(ctx, ep, named.Path, http.MethodHead, "manifests", named.Object(), acceptManifests())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		resp.Body.Close()
		if desc, ok, err := descriptorFromHeaders(resp, named); err != nil || ok {
			return desc, err
		}
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		resp.Body.Close()
	default:
		return ocispec.Descriptor{}, responseError(resp)
	}
	return r.resolveByGet(ctx, ep, named)
}

func (r *Resolver) resolveByGet(ctx context.Context, ep Endpoint, named reference.Reference) (ocispec.Descriptor, error) {
	resp, err := r.do(ctx, ep, named.Path, http.MethodGet, "manifests", named.Object(), acceptManifests())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, responseError(resp)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, image.MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, transportError(err)
	}
	if len(body) > image.MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s is over the limit of %d bytes: %w", named, image.MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if named.Digest != "" {
		alg = named.Digest.Algorithm()
	}
	desc := ocispec.Descriptor{
		MediaType: sniffMediaType(contentType(resp), body),
		Digest:    alg.FromBytes(body),
		Size:      int64(len(body)),
	}
	if named.Digest != "" && desc.Digest != named.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: content has digest %s: %w", named, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && digest.Digest(h).Algorithm() == alg && digest.Digest(h) != desc.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: registry says digest %s, content has %s: %w", named, h, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	return desc, nil
}
