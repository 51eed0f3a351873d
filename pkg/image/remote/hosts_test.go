package remote

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestParseHosts(t *testing.T) {
	base := filepath.Join("etc", "certs.d", "docker.io")
	for _, tc := range []struct {
		name, host, file string
		want             []Endpoint
	}{
		{
			name: "empty file: default server",
			host: "docker.io",
			want: []Endpoint{{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: capabilitiesAll}},
		},
		{
			name: "server only",
			host: "docker.io",
			file: `server = "https://registry-1.docker.io"`,
			want: []Endpoint{{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: capabilitiesAll}},
		},
		{
			name: "loopback default is plain http",
			host: "127.0.0.1:5000",
			want: []Endpoint{{Scheme: "http", Host: "127.0.0.1:5000", Path: "/v2", Capabilities: capabilitiesAll}},
		},
		{
			name: "mirrors in file order, then the server",
			host: "docker.io",
			file: `
server = "https://registry-1.docker.io"

[host."https://zeta.example.com:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = "zeta-ca.pem"
  dial_timeout = "3s"

[host."https://alpha.example.com/some/prefix"]
  capabilities = ["pull"]
  ca = ["/abs/ca1.pem", "ca2.pem"]
  client = [["client.cert", "client.key"], "both.pem"]
  [host."https://alpha.example.com/some/prefix".header]
    x-custom = "one"
    x-multi = ["a", "b"]

[host."http://override.example.com/custom/api"]
  override_path = true

[host."mirror.example.com"]
`,
			want: []Endpoint{
				{Scheme: "https", Host: "zeta.example.com:5000", Path: "/v2", Capabilities: CapabilityPull | CapabilityResolve,
					TLS: TLSConfig{SkipVerify: true, CAFiles: []string{filepath.Join(base, "zeta-ca.pem")}}, DialTimeout: 3 * time.Second},
				{Scheme: "https", Host: "alpha.example.com", Path: "/some/prefix/v2", Capabilities: CapabilityPull,
					TLS: TLSConfig{
						CAFiles:     []string{"/abs/ca1.pem", filepath.Join(base, "ca2.pem")},
						ClientPairs: [][2]string{{filepath.Join(base, "client.cert"), filepath.Join(base, "client.key")}, {filepath.Join(base, "both.pem"), ""}},
					},
					Header: http.Header{"X-Custom": {"one"}, "X-Multi": {"a", "b"}}},
				{Scheme: "http", Host: "override.example.com", Path: "/custom/api", Capabilities: capabilitiesAll},
				{Scheme: "https", Host: "mirror.example.com", Path: "/v2", Capabilities: capabilitiesAll},
				{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: capabilitiesAll},
			},
		},
		{
			name: "server settings at the top level",
			host: "registry.example.com",
			file: `
server = "https://registry.example.com/v2"
capabilities = ["pull", "resolve"]
skip_verify = true
client = "client.pem"
`,
			want: []Endpoint{{Scheme: "https", Host: "registry.example.com", Path: "/v2", Capabilities: CapabilityPull | CapabilityResolve,
				TLS: TLSConfig{SkipVerify: true, ClientPairs: [][2]string{{filepath.Join(base, "client.pem"), ""}}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHosts(tc.host, base, []byte(tc.file), IsLocalhost)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseHosts:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseHostsErrors(t *testing.T) {
	for _, file := range []string{
		`server = `,
		`unknown_key = true`,
		`[host."https://m"]
  capability = ["pull"]`,
		`[host."https://m"]
  capabilities = ["pull", "fly"]`,
		`[host."https://m"]
  ca = 3`,
		`[host."https://m"]
  ca = ["a", 3]`,
		`[host."https://m"]
  client = [["a", "b", "c"]]`,
		`[host."https://m"]
  header = { x = 3 }`,
		`[host."https://m"]
  dial_timeout = "soon"`,
		`server = "ftp://registry.example.com"`,
		`server = "https://"`,
		`[host."https://m?x=1"]`,
		// net/http would refuse these on every request.
		`[host."https://m"]
  header = { "bad name" = "v" }`,
		`[host."https://m"]
  header = { x = "a\r\nInjected: 1" }`,
	} {
		eps, err := ParseHosts("registry.example.com", "", []byte(file), nil)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseHosts(%q) = %+v, %v; want InvalidArgument", file, eps, err)
			continue
		}
		t.Logf("%q: %v", file, err)
	}
}

func TestHostsDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(sub, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "hosts.toml"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docker.io", `[host."https://mirror.example.com"]`)
	write("registry.example.com_5000_", `server = "https://other.example.com"`)
	write("_default", `[host."https://default-mirror.example.com"]`)
	write("broken.example.com", `server = [`)
	hosts := HostsDir(dir, IsLocalhost)

	for _, tc := range []struct {
		host  string
		hosts []string
	}{
		{"docker.io", []string{"mirror.example.com", "registry-1.docker.io"}},
		{"registry.example.com:5000", []string{"other.example.com"}},
		{"elsewhere.example.com", []string{"default-mirror.example.com", "elsewhere.example.com"}},
	} {
		eps, err := hosts(ctx, tc.host)
		if err != nil {
			t.Fatalf("hosts(%s): %v", tc.host, err)
		}
		var got []string
		for _, ep := range eps {
			got = append(got, ep.Host)
		}
		if !reflect.DeepEqual(got, tc.hosts) {
			t.Errorf("hosts(%s) = %v, want %v", tc.host, got, tc.hosts)
		}
	}
	_, err := hosts(ctx, "broken.example.com")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), filepath.Join(dir, "broken.example.com", "hosts.toml")) {
		t.Errorf("broken hosts.toml: %v, want InvalidArgument naming the file", err)
	}
	eps, err := HostsDir("", nil)(ctx, "localhost:5000")
	if err != nil || len(eps) != 1 || eps[0].Scheme != "https" {
		t.Errorf("HostsDir(\"\", nil) = %+v, %v; want one https endpoint", eps, err)
	}
}

func TestIsLocalhost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1": true, "127.1.2.3:80": true,
		"[::1]:5000": true, "::1": true, "docker.io": false, "10.0.0.1:5000": false, "localhost.example.com": false,
	} {
		if got := IsLocalhost(host); got != want {
			t.Errorf("IsLocalhost(%q) = %v, want %v", host, got, want)
		}
	}
}
