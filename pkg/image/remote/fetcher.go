package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
)

// Fetcher reads the blobs and manifests of one repository.
type Fetcher struct {
	r         *Resolver
	ref       reference.Reference
	endpoints []Endpoint // with CapabilityPull, in order
}

// Fetch returns the content of desc, read from the first endpoint that
// has it: FetchFrom(ctx, desc, 0).
func (f *Fetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadSeekCloser, error) {
	return f.FetchFrom(ctx, desc, 0)
}

// FetchFrom returns the content of desc from offset on, for resuming an
// ingest at its Status().Offset. It asks for "Range: bytes=<offset>-";
// when a registry ignores the range and sends the whole blob, the first
// offset bytes are read and discarded, so the reader always starts at
// offset. The request is made before FetchFrom returns, so NotFound and
// auth errors come from here.
//
// The reader yields exactly the blob's bytes up to desc.Size: a longer
// body is an error (FailedPrecondition), a shorter one io.ErrUnexpectedEOF
// (Unavailable). The digest is not checked here: the content store checks
// it on Commit. Seek to the current position is free (content.Copy seeks
// to the ingest's offset); a Seek elsewhere closes the body and the next
// Read asks again from there, under the ctx given here.
func (f *Fetcher) FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadSeekCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %q from %s: %w: %w", desc.Digest, f.ref.Name(), err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 || offset < 0 || offset > desc.Size {
		return nil, fmt.Errorf("fetch %s from %s: offset %d of a %d-byte blob: %w", desc.Digest, f.ref.Name(), offset, desc.Size, errdefs.ErrInvalidArgument)
	}
	br := &blobReader{ctx: ctx, f: f, desc: desc, pos: offset}
	if err := br.open(); err != nil {
		return nil, err
	}
	return br, nil
}

// open returns a body of desc from offset, from the first endpoint that
// serves it, and that endpoint.
func (f *Fetcher) open(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, Endpoint, error) {
	if offset == desc.Size {
		return io.NopCloser(strings.NewReader("")), Endpoint{}, nil // nothing left; Commit checks the digest
	}
	what := fmt.Sprintf("fetch %s from %s", desc.Digest, f.ref.Name())
	var errs hostErrors
	for _, ep := range f.endpoints {
		rc, err := f.fetchAt(ctx, ep, desc, offset)
		if err == nil {
			return rc, ep, nil
		}
		if ctx.Err() != nil {
			return nil, Endpoint{}, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		klog.FromContext(ctx).V(2).Info("Registry endpoint failed, trying the next", "image", f.ref.Name(), "digest", desc.Digest, "endpoint", ep.String(), "err", err)
		errs.add(ep, err)
	}
	return nil, Endpoint{}, errs.err(what)
}

// blobReader reads a blob from pos on, reopening at pos after a Seek.
type blobReader struct {
	ctx  context.Context // of the FetchFrom call: every request is made under it
	f    *Fetcher
	desc ocispec.Descriptor
	pos  int64         // offset of the next byte to read
	body io.ReadCloser // nil: open at pos on the next Read
	ep   Endpoint      // that body comes from
}

func (b *blobReader) open() error {
	body, ep, err := b.f.open(b.ctx, b.desc, b.pos)
	if err != nil {
		return err
	}
	b.body, b.ep = body, ep
	return nil
}

// Read reads the body; an error in the middle of it names the blob, the
// repository and the endpoint, and where in the blob it stopped.
func (b *blobReader) Read(p []byte) (int, error) {
	if b.body == nil {
		if err := b.open(); err != nil {
			return 0, err
		}
	}
	n, err := b.body.Read(p)
	b.pos += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("fetch %s from %s (%s): at byte %d of %d: %w", b.desc.Digest, b.f.ref.Name(), b.ep, b.pos, b.desc.Size, err)
	}
	return n, err
}

// Seek moves to an offset in the blob; io.SeekEnd is relative to
// desc.Size.
func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	abs := offset
	switch whence {
	case io.SeekCurrent:
		abs += b.pos
	case io.SeekEnd:
		abs += b.desc.Size
	}
	if abs < 0 || abs > b.desc.Size {
		return b.pos, fmt.Errorf("blob %s: seek to %d of %d bytes: %w", b.desc.Digest, abs, b.desc.Size, errdefs.ErrInvalidArgument)
	}
	if abs != b.pos {
		if b.body != nil {
			b.body.Close()
			b.body = nil
		}
		b.pos = abs
	}
	return abs, nil
}

func (b *blobReader) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}

func (f *Fetcher) fetchAt(ctx context.Context, ep Endpoint, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	kind, header := "blobs", http.Header{}
	if image.IsManifest(desc.MediaType) || image.IsIndex(desc.MediaType) || image.IsSchema1(desc.MediaType) {
		kind, header = "manifests", acceptManifests()
	}
	if offset > 0 {
		header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := f.r.do(ctx, ep, f.ref.Path, http.MethodGet, kind, desc.Digest.String(), header)
	if err != nil {
		return nil, err
	}
	body, err := startAt(resp, desc, offset)
	if err != nil {
		return nil, err
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && digest.Digest(h) != desc.Digest {
		body.Close()
		return nil, fmt.Errorf("registry sent digest %s: %w", h, errdefs.ErrFailedPrecondition)
	}
	return &sizedBody{rc: body, remaining: desc.Size - offset, desc: desc}, nil
}

// startAt checks the response to a fetch from offset and returns its body
// positioned at offset: a 206 must start there, a 200 is the whole blob
// and its first offset bytes are discarded.
func startAt(resp *http.Response, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	want := desc.Size - offset
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset || (total >= 0 && total != desc.Size) {
			resp.Body.Close()
			return nil, fmt.Errorf("Content-Range %q for a range from %d of %d bytes: %w",
				resp.Header.Get("Content-Range"), offset, desc.Size, errdefs.ErrFailedPrecondition)
		}
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
			resp.Body.Close()
			return nil, fmt.Errorf("registry sends %d bytes, descriptor says %d: %w", resp.ContentLength, desc.Size, errdefs.ErrFailedPrecondition)
		}
		if offset > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("skip to offset %d of a response without range: %w: %w", offset, err, errdefs.ErrUnavailable)
			}
		}
		return resp.Body, nil
	default:
		return nil, responseError(resp)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		resp.Body.Close()
		return nil, fmt.Errorf("registry sends %d bytes from offset %d, want %d: %w", resp.ContentLength, offset, want, errdefs.ErrFailedPrecondition)
	}
	return resp.Body, nil
}

// parseContentRange parses "bytes <start>-<end>/<total|*>"; total is -1
// for "*".
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	rng, tot, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("content range %q: %w", s, errdefs.ErrInvalidArgument)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, err
	}
	if tot == "*" {
		return start, -1, nil
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	return start, total, err
}

// sizedBody yields exactly remaining bytes of the blob desc.
type sizedBody struct {
	rc        io.ReadCloser
	remaining int64
	desc      ocispec.Descriptor
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		var one [1]byte
		n, err := io.ReadFull(b.rc, one[:])
		if n > 0 {
			return 0, fmt.Errorf("body is longer than the descriptor's %d bytes: %w", b.desc.Size, errdefs.ErrFailedPrecondition)
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, transportError(err)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.rc.Read(p)
	b.remaining -= int64(n)
	switch {
	case err == io.EOF && b.remaining > 0:
		return n, fmt.Errorf("body ends %d bytes short: %w: %w", b.remaining, io.ErrUnexpectedEOF, errdefs.ErrUnavailable)
	case err == io.EOF:
		return n, nil // the next Read checks for trailing bytes
	case err != nil:
		return n, transportError(err)
	}
	return n, nil
}

func (b *sizedBody) Close() error { return b.rc.Close() }

// descriptorFromHeaders builds the descriptor of a HEAD response; ok is
// false when a header is missing or unusable and a GET must tell.
func descriptorFromHeaders(resp *http.Response, named reference.Reference) (ocispec.Descriptor, bool, error) {
	mt := contentType(resp)
	if !image.IsManifest(mt) && !image.IsIndex(mt) {
		return ocispec.Descriptor{}, false, nil
	}
	d := named.Digest
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		hd, err := digest.Parse(h)
		if err != nil {
			return ocispec.Descriptor{}, false, nil
		}
		if d != "" && hd.Algorithm() == d.Algorithm() && hd != d {
			return ocispec.Descriptor{}, false, fmt.Errorf("manifest %s: registry says digest %s: %w", named, hd, errdefs.ErrFailedPrecondition)
		}
		if d == "" {
			d = hd
		}
	}
	if d == "" || resp.ContentLength < 0 {
		return ocispec.Descriptor{}, false, nil
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}, true, nil
}

// contentType is the media type of resp without parameters.
func contentType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// sniffMediaType returns the media type of a manifest body: ct if it is a
// manifest or index type, else the body's mediaType field, else OCI index
// or manifest by the fields present, else ct.
func sniffMediaType(ct string, body []byte) string {
	if image.IsManifest(ct) || image.IsIndex(ct) {
		return ct
	}
	var shape struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.NewDecoder(bytes.NewReader(body)).Decode(&shape) != nil {
		return ct
	}
	switch {
	case shape.MediaType != "":
		return shape.MediaType
	case shape.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case shape.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ct
}
