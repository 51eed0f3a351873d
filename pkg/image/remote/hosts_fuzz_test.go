package remote

import (
	"bytes"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// FuzzParseHosts parses fuzzed hosts.toml files. A file is either refused
// with InvalidArgument or gives one endpoint per [host."..."] table and
// the server last, each of which a request can be made to as it is: an
// http(s) scheme, a host that reads back as the URL's host, a clean
// absolute API root, capabilities, a non-negative dial timeout, TLS files
// under the hosts directory when relative, and headers that net/http will
// send (a header it would refuse fails every pull later, with no class).
func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{
		"",
		`server = "https://registry-1.docker.io"`,
		`server = "https://registry.example.com/v2"
capabilities = ["pull", "resolve"]
skip_verify = true
client = "client.pem"`,
		`[host."https://zeta.example.com:5000"]
  capabilities = ["pull", "resolve"]
  ca = ["/abs/ca1.pem", "ca2.pem"]
  client = [["client.cert", "client.key"], "both.pem"]
  dial_timeout = "3s"
  [host."https://zeta.example.com:5000".header]
    x-custom = "one"
    x-multi = ["a", "b"]
[host."http://override.example.com/custom/api"]
  override_path = true
[host."mirror.example.com"]`,
		`[host."https://m"]
  header = { "bad name" = "v", x = "a\nb" }`,
		`host = { "a" = {}, "b" = { capabilities = ["push"] } }`,
		`server = "https://u:p@h/../..//x/./v2?"`,
		`[host."https://[::1]:5000/a/../../b"]`,
		`[host."h".x]`,
	} {
		f.Add("registry.example.com", s)
		f.Add("127.0.0.1:5000", s)
	}
	f.Fuzz(func(t *testing.T, host, file string) {
		base := filepath.Join("/etc/cri-runtime/certs.d", "h")
		eps, err := ParseHosts(host, base, []byte(file), IsLocalhost)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		var hf hostFile
		if err := toml.NewDecoder(bytes.NewReader([]byte(file))).Decode(&hf); err != nil {
			t.Fatalf("parsed, but does not decode: %v", err)
		}
		if len(eps) != len(hf.Hosts)+1 {
			t.Fatalf("%d endpoints for %d hosts and a server", len(eps), len(hf.Hosts))
		}
		for _, ep := range eps {
			checkEndpoint(t, ep, base)
		}
	})
}

func checkEndpoint(t *testing.T, ep Endpoint, base string) {
	t.Helper()
	if ep.Scheme != "http" && ep.Scheme != "https" {
		t.Fatalf("%v: scheme", ep)
	}
	u, err := url.Parse(ep.String())
	if err != nil || u.Scheme != ep.Scheme || u.Host != ep.Host || ep.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		t.Fatalf("%v does not read back as scheme://host/path: %+v, %v", ep, u, err)
	}
	if ep.Path != "" && (path.Clean(ep.Path) != ep.Path || !path.IsAbs(ep.Path) || u.Path != ep.Path) {
		t.Fatalf("%v: API root %q is not a clean absolute path", ep, ep.Path)
	}
	if ep.Capabilities == 0 || ep.Capabilities&^capabilitiesAll != 0 || ep.DialTimeout < 0 {
		t.Fatalf("%v: capabilities %b dial timeout %v", ep, ep.Capabilities, ep.DialTimeout)
	}
	files := append([]string{}, ep.TLS.CAFiles...)
	for _, p := range ep.TLS.ClientPairs {
		files = append(files, p[0])
		if p[1] != "" {
			files = append(files, p[1])
		}
	}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			t.Fatalf("%v: TLS file %q not absolute under %s", ep, f, base)
		}
	}
	for k, vs := range ep.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			t.Fatalf("%v: header name %q", ep, k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n") {
				t.Fatalf("%v: header %s value %q", ep, k, v)
			}
		}
	}
}
