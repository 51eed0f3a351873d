package service

import (
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// State is the state of one blob of a pull.
type State int

// The states of a blob, in the order a blob goes through them.
const (
	// StateWaiting: the blob is known but its fetch has not started (a
	// download slot is busy, or the layers below are not yet applied).
	StateWaiting State = iota
	// StateDownloading: bytes are arriving; Offset counts them.
	StateDownloading
	// StateUnpacking: the layer is being applied from the content store
	// (a streamed layer is applied while StateDownloading).
	StateUnpacking
	// StateDone: the blob is committed (and the layer applied).
	StateDone
	// StateExists: the blob was already in the content store, or the
	// layer already unpacked; nothing was fetched.
	StateExists
)

func (s State) String() string {
	switch s {
	case StateWaiting:
		return "waiting"
	case StateDownloading:
		return "downloading"
	case StateUnpacking:
		return "unpacking"
	case StateDone:
		return "done"
	case StateExists:
		return "exists"
	}
	return "unknown"
}

// Progress is one event of a pull: the state of one blob, or, with
// Summary set, the end of the pull.
type Progress struct {
	Desc  ocispec.Descriptor
	State State
	// Offset is the number of bytes of the blob in the content store.
	Offset int64
	// Total is the size of the blob.
	Total int64
	// Resumed is the offset an interrupted download resumed from (the
	// bytes an earlier pull left in the ingest), 0 for a fresh one.
	Resumed int64
	// StartedAt is when the download started; UpdatedAt when this event
	// was made. Bytes per second: (Offset-Resumed) over their difference.
	StartedAt, UpdatedAt time.Time
	// Summary is set on the last event of a pull only.
	Summary *Summary
}

// BytesPerSecond is the download rate of the blob so far.
func (p Progress) BytesPerSecond() float64 {
	d := p.UpdatedAt.Sub(p.StartedAt).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(p.Offset-p.Resumed) / d
}

// Summary says what a pull did and where its time went. The phase times
// are sums over blobs and layers, which overlap: they can add up to more
// than Elapsed.
type Summary struct {
	Name    string
	Target  ocispec.Descriptor
	Elapsed time.Duration
	// Blobs fetched, and their bytes as received from the registry.
	Fetched      int
	FetchedBytes int64
	// Existing counts the blobs not fetched because they were present,
	// or, for layers, because their snapshot was (those count in
	// UnpackedExisting too). Fetched plus Existing is every blob of the
	// pull.
	Existing int
	// Layers applied, layers found already unpacked.
	Unpacked, UnpackedExisting int
	// Streamed counts the layers applied while they downloaded.
	Streamed int
	// Fetch is the time spent receiving blobs that were not streamed into
	// an apply; Apply the time spent decompressing and applying layers
	// (streamed ones include their download); Sync the time in syncfs;
	// Commit the time committing snapshots.
	Fetch, Apply, Sync, Commit time.Duration
}

// stats are the counters behind a Summary, updated by many goroutines.
type stats struct {
	fetched, existing, unpacked, unpackedExisting, streamed atomic.Int64
	fetchedBytes                                            atomic.Int64
	fetch, apply, sync, commit                              atomic.Int64 // nanoseconds
}

func (s *stats) summary() *Summary {
	return &Summary{
		Fetched:          int(s.fetched.Load()),
		FetchedBytes:     s.fetchedBytes.Load(),
		Existing:         int(s.existing.Load()),
		Unpacked:         int(s.unpacked.Load()),
		UnpackedExisting: int(s.unpackedExisting.Load()),
		Streamed:         int(s.streamed.Load()),
		Fetch:            time.Duration(s.fetch.Load()),
		Apply:            time.Duration(s.apply.Load()),
		Sync:             time.Duration(s.sync.Load()),
		Commit:           time.Duration(s.commit.Load()),
	}
}

func since(t time.Time) int64 { return int64(time.Since(t)) }

// progressInterval is the least time between two downloading events of
// one blob.
const progressInterval = 100 * time.Millisecond

// reporter hands progress events to the subscribers of a pull: every
// caller that waits on it, the first and the deduplicated ones.
type reporter struct {
	mu   sync.Mutex // guards subs; held while calling them, so events stay ordered
	subs []func(Progress)
}

func (r *reporter) subscribe(fn func(Progress)) {
	if fn == nil {
		return
	}
	r.mu.Lock()
	r.subs = append(r.subs, fn)
	r.mu.Unlock()
}

func (r *reporter) emit(p Progress) {
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fn := range r.subs {
		fn(p)
	}
}

// blobProgress reports the download of one blob, at most every
// progressInterval.
type blobProgress struct {
	r       *reporter
	p       Progress
	lastOut time.Time
}

func newBlobProgress(r *reporter, desc ocispec.Descriptor, offset int64) *blobProgress {
	now := time.Now()
	return &blobProgress{r: r, p: Progress{Desc: desc, State: StateDownloading, Offset: offset, Total: desc.Size, Resumed: offset, StartedAt: now, UpdatedAt: now}}
}

func (b *blobProgress) add(n int) {
	b.p.Offset += int64(n)
	if now := time.Now(); now.Sub(b.lastOut) >= progressInterval {
		b.lastOut = now
		b.p.UpdatedAt = now
		b.r.emit(b.p)
	}
}

func (b *blobProgress) state(s State) {
	b.p.State = s
	b.p.UpdatedAt = time.Now()
	b.r.emit(b.p)
}
