package fault

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// liar is a registry that serves what a test tells it to, where the
// distribution registry would refuse to store it or would tell the
// truth: a blob served with other content than its digest, a manifest
// over the limits, a body that never ends. It serves any repository.
type liar struct {
	mu       sync.Mutex // guards the maps
	blobs    map[digest.Digest][]byte
	types    map[digest.Digest]string // the Content-Type of a manifest
	tags     map[string]digest.Digest
	noLength map[digest.Digest]bool // sent chunked, without Content-Length
	endless  map[digest.Digest]bool // its bytes, then zeros until the client gives up
	addr     string
}

func newLiar(t *testing.T) *liar {
	l := &liar{blobs: map[digest.Digest][]byte{}, types: map[digest.Digest]string{}, tags: map[string]digest.Digest{},
		noLength: map[digest.Digest]bool{}, endless: map[digest.Digest]bool{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	l.addr = strings.TrimPrefix(srv.URL, "http://")
	return l
}

// add serves the blobs of b and tags its target; it returns the
// reference of the tag.
func (l *liar) add(b imagetest.Built, tag string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, bl := range b.Blobs {
		l.blobs[bl.Desc.Digest] = bl.Data
		l.types[bl.Desc.Digest] = bl.Desc.MediaType
	}
	l.tags[tag] = b.Target.Digest
	return l.addr + "/hostile/liar:" + tag
}

// serve replaces what is served for d.
func (l *liar) serve(d digest.Digest, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blobs[d] = data
}

func (l *liar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	i := strings.LastIndex(r.URL.Path, "/")
	obj := r.URL.Path[i+1:]
	l.mu.Lock()
	d, ok := l.tags[obj]
	if !ok {
		d = digest.Digest(obj)
	}
	b, found := l.blobs[d]
	mt, noLength, endless := l.types[d], l.noLength[d], l.endless[d]
	l.mu.Unlock()
	if !found {
		http.NotFound(w, r)
		return
	}
	if strings.Contains(r.URL.Path, "/manifests/") {
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Docker-Content-Digest", d.String())
	}
	if !noLength && !endless {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	}
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(b); err != nil || !endless {
		return
	}
	zeros := make([]byte, 64<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(zeros); err != nil {
			return
		}
	}
}
