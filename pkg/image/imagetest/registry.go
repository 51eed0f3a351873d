package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
)

// The credentials of a registry started with StartRegistryWithBasicAuth.
const (
	BasicAuthUsername = "imagetest"
	BasicAuthPassword = "imagetest-password"
	// basicAuthHash is the bcrypt hash of BasicAuthPassword (cost 5): the
	// distribution registry accepts only bcrypt in its htpasswd file.
	basicAuthHash = "$2a$05$SufnHFDHV6qSti837MWYU.WSnAJxWZP1e/771PIiZ95y/lpHUswfS"
)

// registryStartTimeout bounds the wait for a registry to answer on /v2/.
const registryStartTimeout = 15 * time.Second

// StartRegistry starts the distribution registry ("docker-registry" in
// PATH) on 127.0.0.1 with a free port and its storage in a temporary
// directory, waits until it serves /v2/, and stops it when the test ends.
// It returns the registry's host:port. The test is skipped if the binary
// is missing.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return startRegistry(t, "")
}

// StartRegistryWithBasicAuth is StartRegistry with HTTP basic auth: only
// BasicAuthUsername with BasicAuthPassword may pull and push.
func StartRegistryWithBasicAuth(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(BasicAuthUsername+":"+basicAuthHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRegistry(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: imagetest\n    path: %s\n", htpasswd))
}

func startRegistry(t testing.TB, authConfig string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		testenv.Missing(t, "the distribution registry is not installed (docker-registry not in PATH): %v", err)
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		host, err := tryStartRegistry(t, bin, authConfig)
		if err == nil {
			return host
		}
		lastErr = err
	}
	t.Fatalf("start registry: %v", lastErr)
	return ""
}

func tryStartRegistry(t testing.TB, bin, authConfig string) (string, error) {
	dir := t.TempDir()
	host, err := freeAddr()
	if err != nil {
		return "", err
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "storage"), host, authConfig)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "serve", configPath)
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := waitReady(host, exited); err != nil {
		stop()
		return "", fmt.Errorf("%w; registry output:\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("registry %s output:\n%s", host, stderr.String())
		}
	})
	return host, nil
}

// waitReady polls GET /v2/ until the registry answers 200 or 401.
func waitReady(host string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), registryStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("registry on %s exited", host)
		case <-ctx.Done():
			return fmt.Errorf("registry on %s not ready after %v", host, registryStartTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lockedBuffer collects a child's output; the child writes from the
// exec package's copying goroutines while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
