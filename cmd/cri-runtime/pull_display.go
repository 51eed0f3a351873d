package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/image"
)

// blobName is how a blob is shown: its kind and a short digest.
func blobName(d ocispec.Descriptor) string {
	kind := "blob"
	switch mt := d.MediaType; {
	case image.IsIndex(mt):
		kind = "index"
	case image.IsManifest(mt):
		kind = "manifest"
	case image.IsConfig(mt):
		kind = "config"
	case image.IsLayer(mt):
		kind = "layer"
	}
	return kind + " " + shortDigest(d.Digest)
}

// shortDigest is d with its encoded part cut to 12 characters.
func shortDigest(d digest.Digest) string {
	if enc := d.Encoded(); len(enc) > 12 {
		return d.Algorithm().String() + ":" + enc[:12]
	}
	return d.String()
}

// blobStatus is the text of a blob's state: sizes, speed, resume.
func blobStatus(p client.PullProgress, speed bool) string {
	switch p.State {
	case client.BlobDownloading:
		s := fmt.Sprintf("downloading %s / %s", decimalSize(p.Offset), decimalSize(p.Total))
		if speed {
			s += fmt.Sprintf(" %s/s", decimalSize(int64(p.BytesPerSecond())))
		}
		if p.Resumed > 0 {
			s += fmt.Sprintf(" (resumed at %s)", decimalSize(p.Resumed))
		}
		return s
	case client.BlobExists:
		return "exists " + decimalSize(p.Total)
	}
	return p.State.String() + " " + decimalSize(p.Total)
}

// plainInterval is the least time between two lines of a blob that
// downloads, in plain output.
const plainInterval = 5 * time.Second

// plainDisplay prints one line per change of state of a blob, and a line
// every plainInterval of a blob that downloads: for output that is not a
// terminal (a log, a pipe).
type plainDisplay struct {
	w        io.Writer
	interval time.Duration
	last     map[digest.Digest]plainLine
}

// plainLine is the last line printed of a blob.
type plainLine struct {
	state  client.BlobState
	offset int64
	at     time.Time
}

func newPlainDisplay(w io.Writer) *plainDisplay {
	return &plainDisplay{w: w, interval: plainInterval, last: map[digest.Digest]plainLine{}}
}

func (d *plainDisplay) update(p client.PullProgress) {
	now := time.Now()
	if l, ok := d.last[p.Desc.Digest]; ok && l.state == p.State &&
		(p.State != client.BlobDownloading || p.Offset == l.offset || now.Sub(l.at) < d.interval) {
		return
	}
	d.last[p.Desc.Digest] = plainLine{state: p.State, offset: p.Offset, at: now}
	fmt.Fprintf(d.w, "%s: %s\n", blobName(p.Desc), blobStatus(p, true))
}

func (d *plainDisplay) finish(bool) {}

// barDisplay shows one progress bar per blob on a terminal.
type barDisplay struct {
	p    *mpb.Progress
	bars map[digest.Digest]*blobBar
	list []*blobBar // in order of appearance
}

// blobBar is one bar and the last event of its blob, which the bar's
// decorator reads from mpb's goroutine.
type blobBar struct {
	bar  *mpb.Bar
	mu   sync.Mutex // guards last
	last client.PullProgress
}

func newBarDisplay(ctx context.Context, w io.Writer) *barDisplay {
	return &barDisplay{
		p:    mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(30)),
		bars: map[digest.Digest]*blobBar{},
	}
}

func (d *barDisplay) update(p client.PullProgress) {
	b, ok := d.bars[p.Desc.Digest]
	if !ok {
		b = &blobBar{last: p}
		b.bar = d.p.New(max(p.Total, 1), mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(blobName(p.Desc), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				b.mu.Lock()
				defer b.mu.Unlock()
				return blobStatus(b.last, true)
			})))
		d.bars[p.Desc.Digest] = b
		d.list = append(d.list, b)
	}
	b.mu.Lock()
	b.last = p
	b.mu.Unlock()
	switch p.State {
	case client.BlobDone, client.BlobExists:
		b.bar.SetTotal(max(p.Total, 1), true)
	default:
		b.bar.SetCurrent(min(p.Offset, max(p.Total, 1)-1)) // complete only when done
	}
}

func (d *barDisplay) finish(ok bool) {
	for _, b := range d.list {
		if b.bar.Completed() {
			continue
		}
		if ok {
			b.bar.SetTotal(-1, true)
		} else {
			b.bar.Abort(false)
		}
	}
	d.p.Wait()
}
