package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"golang.org/x/net/http/httpguts"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Capabilities are what an endpoint may be used for.
type Capabilities uint8

// The capabilities of an endpoint.
const (
	// CapabilityPull: fetch blobs and manifests by digest.
	CapabilityPull Capabilities = 1 << iota
	// CapabilityResolve: resolve tags to digests. Give it only to trusted
	// mirrors: a mirror that resolves decides what a tag means.
	CapabilityResolve
	// CapabilityPush: accepted in hosts.toml; this runtime does not push.
	CapabilityPush

	capabilitiesAll = CapabilityPull | CapabilityResolve | CapabilityPush
)

// Has reports whether c includes all of want.
func (c Capabilities) Has(want Capabilities) bool { return c&want == want }

// Endpoint is one registry API root to try for a registry host. Endpoints
// are plain data; the Resolver builds and caches the HTTP transports.
type Endpoint struct {
	Scheme       string // "https" or "http"
	Host         string // host[:port] to connect to
	Path         string // API root: "/v2", or any path with override_path
	Capabilities Capabilities
	Header       http.Header // extra request headers; nil for none
	TLS          TLSConfig   // used for https only
	// DialTimeout bounds connection set-up; 0: the transport's default.
	DialTimeout time.Duration
}

// TLSConfig are the TLS settings of an endpoint, as file paths so that
// they can be compared and the transports built from them cached.
type TLSConfig struct {
	CAFiles     []string    // PEM CA bundles added to the system pool
	ClientPairs [][2]string // certificate and key files; key "" if in the cert file
	SkipVerify  bool        // do not verify the server's certificate
}

// String is "scheme://host/path", for messages.
func (e Endpoint) String() string { return e.Scheme + "://" + e.Host + e.Path }

// HostsFunc returns the endpoints to try, in order, for a registry host
// (the domain of a reference, e.g. "docker.io" or "localhost:5000").
type HostsFunc func(ctx context.Context, host string) ([]Endpoint, error)

// DefaultServer is the server endpoint of host with no configuration:
// https://host/v2 (http when plainHTTP(host)), and
// https://registry-1.docker.io/v2 for "docker.io".
func DefaultServer(host string, plainHTTP func(host string) bool) Endpoint {
	ep := Endpoint{Scheme: "https", Host: host, Path: "/v2", Capabilities: capabilitiesAll}
	if host == "docker.io" {
		ep.Host = "registry-1.docker.io"
	}
	if plainHTTP != nil && plainHTTP(host) {
		ep.Scheme = "http"
	}
	return ep
}

// IsLocalhost reports whether host (with or without a port) is
// "localhost" or a loopback address: the default of Options.PlainHTTP.
func IsLocalhost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// HostsDir returns a HostsFunc that reads containerd's hosts.toml layout:
// <dir>/<host>/hosts.toml (a host:port also looked up as "host_port_"),
// else <dir>/_default/hosts.toml, else the DefaultServer alone. The files
// are read on every call, so edits apply to the next pull. dir "" reads
// nothing. A file that does not parse is InvalidArgument naming the file.
func HostsDir(dir string, plainHTTP func(host string) bool) HostsFunc {
	return func(ctx context.Context, host string) ([]Endpoint, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if dir == "" {
			return []Endpoint{DefaultServer(host, plainHTTP)}, nil
		}
		for _, sub := range hostDirs(host) {
			hostDir := filepath.Join(dir, sub)
			file := filepath.Join(hostDir, "hosts.toml")
			data, err := os.ReadFile(file)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("hosts file %s: %w: %w", file, err, errdefs.ErrFailedPrecondition)
			}
			eps, err := ParseHosts(host, hostDir, data, plainHTTP)
			if err != nil {
				return nil, fmt.Errorf("hosts file %s: %w", file, err)
			}
			return eps, nil
		}
		return []Endpoint{DefaultServer(host, plainHTTP)}, nil
	}
}

func hostDirs(host string) []string {
	dirs := []string{host}
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		dirs = append(dirs, host[:i]+"_"+host[i+1:]+"_")
	}
	return append(dirs, "_default")
}

// hostFile is the schema of hosts.toml. The top-level fields configure
// the server; [host."<url>"] tables configure the mirrors, tried first in
// file order.
type hostFile struct {
	hostEntry
	Server string               `toml:"server"`
	Hosts  map[string]hostEntry `toml:"host"`
}

type hostEntry struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`     // path or [paths]
	Client       any            `toml:"client"` // path, [paths] or [[cert, key]]
	SkipVerify   bool           `toml:"skip_verify"`
	Header       map[string]any `toml:"header"` // value: string or [strings]
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

// ParseHosts parses the hosts.toml of registry host; relative paths in it
// are relative to baseDir. It returns the mirrors in file order, then the
// server. Errors are InvalidArgument.
func ParseHosts(host, baseDir string, data []byte, plainHTTP func(host string) bool) ([]Endpoint, error) {
	var f hostFile
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, tomlError(err)
	}
	var eps []Endpoint
	for _, key := range hostOrder(data, f.Hosts) {
		ep, err := parseEntry(key, f.Hosts[key], baseDir, plainHTTP)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", key, err)
		}
		eps = append(eps, ep)
	}
	server := f.Server
	if server == "" {
		def := DefaultServer(host, plainHTTP)
		server = def.Scheme + "://" + def.Host
	}
	ep, err := parseEntry(server, f.hostEntry, baseDir, plainHTTP)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	return append(eps, ep), nil
}

// hostOrder lists the keys of the [host."..."] tables in file order;
// hosts set some other way (inline tables) follow, sorted.
func hostOrder(data []byte, hosts map[string]hostEntry) []string {
	var order []string
	p := unstable.Parser{}
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.KeyValue {
			continue
		}
		var parts []string
		for it := e.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) >= 2 && parts[0] == "host" && !slices.Contains(order, parts[1]) {
			order = append(order, parts[1])
		}
	}
	var rest []string
	for k := range hosts {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(order, rest...)
}

func parseEntry(server string, e hostEntry, baseDir string, plainHTTP func(string) bool) (Endpoint, error) {
	if !strings.Contains(server, "://") {
		scheme := "https"
		if plainHTTP != nil && plainHTTP(strings.SplitN(server, "/", 2)[0]) {
			scheme = "http"
		}
		server = scheme + "://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		strings.ContainsFunc(u.Path, unicode.IsControl) {
		return Endpoint{}, fmt.Errorf("want http(s)://host[:port][/path]: %w", errdefs.ErrInvalidArgument)
	}
	ep := Endpoint{Scheme: u.Scheme, Host: u.Host, Path: apiRoot(u.Path, e.OverridePath), TLS: TLSConfig{SkipVerify: e.SkipVerify}}
	if ep.Capabilities, err = parseCapabilities(e.Capabilities); err != nil {
		return Endpoint{}, err
	}
	if ep.TLS.CAFiles, err = stringList("ca", e.CA, baseDir); err != nil {
		return Endpoint{}, err
	}
	if ep.TLS.ClientPairs, err = clientPairs(e.Client, baseDir); err != nil {
		return Endpoint{}, err
	}
	if ep.Header, err = headers(e.Header); err != nil {
		return Endpoint{}, err
	}
	if e.DialTimeout != "" {
		if ep.DialTimeout, err = time.ParseDuration(e.DialTimeout); err != nil || ep.DialTimeout <= 0 {
			return Endpoint{}, fmt.Errorf("dial_timeout %q is not a positive duration: %w", e.DialTimeout, errdefs.ErrInvalidArgument)
		}
	}
	return ep, nil
}

// apiRoot is the path of the API root: the URL's path with "/v2"
// appended unless it ends so already or override_path is set.
func apiRoot(p string, override bool) string {
	if p != "" {
		p = path.Clean("/" + p)
	}
	if override {
		return strings.TrimSuffix(p, "/")
	}
	if p == "/" || p == "" {
		return "/v2"
	}
	if !strings.HasSuffix(p, "/v2") {
		p += "/v2"
	}
	return p
}

func parseCapabilities(names []string) (Capabilities, error) {
	if len(names) == 0 {
		return capabilitiesAll, nil
	}
	var c Capabilities
	for _, n := range names {
		switch strings.ToLower(n) {
		case "pull":
			c |= CapabilityPull
		case "resolve":
			c |= CapabilityResolve
		case "push":
			c |= CapabilityPush
		default:
			return 0, fmt.Errorf("unknown capability %q: %w", n, errdefs.ErrInvalidArgument)
		}
	}
	return c, nil
}

// stringList reads a string or an array of strings; with baseDir set,
// relative entries are made relative to it.
func stringList(field string, v any, baseDir string) ([]string, error) {
	var out []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		out = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a string: %w", field, x, errdefs.ErrInvalidArgument)
			}
			out = append(out, s)
		}
	default:
		return nil, fmt.Errorf("%s: want a string or an array of strings, not %T: %w", field, v, errdefs.ErrInvalidArgument)
	}
	if baseDir != "" {
		for i, p := range out {
			if !filepath.IsAbs(p) {
				out[i] = filepath.Join(baseDir, p)
			}
		}
	}
	return out, nil
}

// clientPairs reads client = "cert" | ["cert", ...] | [["cert", "key"], ...].
func clientPairs(v any, baseDir string) ([][2]string, error) {
	list, ok := v.([]any)
	if !ok {
		files, err := stringList("client", v, baseDir)
		if err != nil || len(files) == 0 {
			return nil, err
		}
		return [][2]string{{files[0], ""}}, nil
	}
	var out [][2]string
	for _, x := range list {
		files, err := stringList("client", x, baseDir)
		if err != nil {
			return nil, err
		}
		switch len(files) {
		case 1:
			out = append(out, [2]string{files[0], ""})
		case 2:
			out = append(out, [2]string{files[0], files[1]})
		default:
			return nil, fmt.Errorf("client: want a cert file or a [cert, key] pair, got %v: %w", x, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

func headers(m map[string]any) (http.Header, error) {
	if len(m) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for k, v := range m {
		vals, err := stringList("header "+k, v, "")
		if err != nil {
			return nil, err
		}
		// net/http refuses such a header on every request, with no class:
		// refuse the file instead, naming the header.
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("header %q: not a valid header name: %w", k, errdefs.ErrInvalidArgument)
		}
		for _, val := range vals {
			if !httpguts.ValidHeaderFieldValue(val) {
				return nil, fmt.Errorf("header %q: value %q: control characters: %w", k, val, errdefs.ErrInvalidArgument)
			}
			h.Add(k, val)
		}
	}
	return h, nil
}

// tomlError says where a hosts.toml is wrong: the unknown keys, or the
// line and column of a syntax or type error.
func tomlError(err error) error {
	var (
		strict *toml.StrictMissingError
		decode *toml.DecodeError
	)
	switch {
	case errors.As(err, &strict):
		var keys []string
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown keys %q: %w", keys, errdefs.ErrInvalidArgument)
	case errors.As(err, &decode):
		row, col := decode.Position()
		return fmt.Errorf("line %d column %d: %w: %w", row, col, err, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
}
