package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/archive"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// unpackJob unpacks the layers of one manifest into the snapshotter.
//
// With rebase, every layer is prepared as an empty snapshot and applied
// as soon as its bytes are there (streamed, or from content); commit runs
// the commits in chain order, each over the previous ChainID, once the
// layer's data is synced. Without, sequential applies each layer over a
// copy of the one below, in order, as the blobs arrive.
type unpackJob struct {
	p        *puller
	sn       snapshot.Snapshotter
	rebase   bool
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
	chainIDs []digest.Digest
	start    int // layers below start are unpacked already

	// ready[i] is closed when layer i is applied (rebase) or its blob is
	// committed (native); applied[i] is then set.
	ready   []chan struct{}
	applied []appliedLayer

	mu      sync.Mutex              // guards unclaim and active
	unclaim map[digest.Digest][]int // indexes of layers no handler claimed yet
	active  map[string]struct{}     // snapshot keys prepared, not committed nor removed
}

// appliedLayer is a layer applied into the active snapshot key, whose
// data is on disk once the syncer passed ticket.
type appliedLayer struct {
	key, root string
	ticket    uint64
	// over is set when the layer could not be applied alone (a hard link
	// to a file of a lower layer): it is applied over its parents instead.
	over bool
}

// newJob reads the config of the manifest mf, finds the layers already
// unpacked, registers the job and starts its committer.
func (p *puller) newJob(ctx context.Context, mf, config ocispec.Descriptor, layers []ocispec.Descriptor) (*unpackJob, error) {
	img, err := image.ReadConfig(ctx, p.s.cs, config)
	if err != nil {
		return nil, err
	}
	if err := p.checkPlatform(mf, img.Platform); err != nil {
		return nil, err
	}
	if len(img.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("config %s has %d diff IDs for %d layers: %w", config.Digest, len(img.RootFS.DiffIDs), len(layers), errdefs.ErrInvalidArgument)
	}
	j := &unpackJob{
		p: p, sn: p.s.sn, rebase: p.s.rebase, config: config, layers: layers,
		diffIDs: img.RootFS.DiffIDs, chainIDs: image.ChainIDs(img.RootFS.DiffIDs),
		ready: make([]chan struct{}, len(layers)), applied: make([]appliedLayer, len(layers)),
		unclaim: map[digest.Digest][]int{}, active: map[string]struct{}{},
	}
	for i := len(layers) - 1; i >= 0; i-- {
		_, err := j.sn.Stat(ctx, j.chainIDs[i].String())
		if err == nil {
			j.start = i + 1
			break
		}
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	for i, l := range layers {
		j.ready[i] = make(chan struct{})
		if i >= j.start {
			j.unclaim[l.Digest] = append(j.unclaim[l.Digest], i)
		}
		p.rep.emit(Progress{Desc: l, State: StateWaiting, Total: l.Size})
	}
	p.stats.unpackedExisting.Add(int64(j.start))
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.mu.Unlock()
	if j.rebase {
		p.eg.Go(func() error { return j.commitInOrder(p.ctx) })
	} else {
		p.eg.Go(func() error { return j.applyInOrder(p.ctx) })
	}
	return j, nil
}

// checkPlatform refuses the manifest the reference resolved to when its
// config names a platform that the platforms asked for (the host's by
// default) do not match, as containerd does: an index was filtered by
// platform already, a single manifest was not. NotFound, as no manifest
// for the platform exists.
func (p *puller) checkPlatform(mf ocispec.Descriptor, pl ocispec.Platform) error {
	if mf.Digest != p.root || (pl.OS == "" && pl.Architecture == "") || p.unpackM.Match(pl) {
		return nil
	}
	return fmt.Errorf("manifest %s is for %s, not for %s: %w", mf.Digest, image.FormatPlatform(image.NormalizePlatform(pl)), p.unpackM, errdefs.ErrNotFound)
}

// todo lists the layers to fetch: those to unpack, then those already
// unpacked, whose blobs are fetched only if the content store lost them
// (an image's blobs stay whole: `images check` and a push need them).
func (j *unpackJob) todo() []ocispec.Descriptor {
	todo := slices.Clone(j.layers[j.start:])
	seen := map[digest.Digest]bool{}
	for _, l := range todo {
		seen[l.Digest] = true
	}
	for _, l := range j.layers[:j.start] {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			todo = append(todo, l)
		}
	}
	return todo
}

func (j *unpackJob) claim(dgst digest.Digest) (int, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	idx := j.unclaim[dgst]
	if len(idx) == 0 {
		return 0, false
	}
	j.unclaim[dgst] = idx[1:]
	return idx[0], true
}

// blobReady is called once the blob of layer i is committed.
func (j *unpackJob) blobReady(i int) {
	if !j.rebase {
		close(j.ready[i])
		return
	}
	ctx := j.p.ctx
	j.p.eg.Go(func() error {
		if err := j.p.s.unpackSem.Acquire(ctx, 1); err != nil {
			return err
		}
		defer j.p.s.unpackSem.Release(1)
		return j.applyFromContent(ctx, i)
	})
}

// applyOpts are those of a layer applied alone into an empty snapshot
// (alone) or onto a tree that shows its parents.
func (j *unpackJob) applyOpts(alone bool) []archive.ApplyOpt {
	mode := archive.WhiteoutMode(archive.WhiteoutDelete{})
	if alone {
		mode = archive.WhiteoutOverlay{UserXattr: j.p.s.userXatt}
	}
	return []archive.ApplyOpt{archive.WithMaxSize(j.p.s.cfg.MaxLayerSize), archive.WithWhiteoutMode(mode)}
}

// prepare makes the empty active snapshot of layer i and returns its key
// and the directory to apply into.
func (j *unpackJob) prepare(ctx context.Context, i int) (key, root string, err error) {
	key, err = j.prepareKey(ctx, i, "")
	if err != nil {
		return "", "", err
	}
	mounts, err := j.sn.Mounts(ctx, key)
	if err == nil && (len(mounts) != 1 || mounts[0].Type != "bind") {
		err = fmt.Errorf("snapshot %q: mounts %v are not one bind: %w", key, mounts, errdefs.ErrNotImplemented)
	}
	if err != nil {
		j.remove(ctx, key)
		return "", "", err
	}
	return key, mounts[0].Source, nil
}

func (j *unpackJob) prepareKey(ctx context.Context, i int, parent string) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	key := fmt.Sprintf("extract-%s-%s", hex.EncodeToString(b[:]), j.chainIDs[i].Encoded()[:16])
	if _, err := j.sn.Prepare(ctx, key, parent); err != nil {
		return "", fmt.Errorf("layer %d (%s): %w", i, j.layers[i].Digest, err)
	}
	j.mu.Lock()
	j.active[key] = struct{}{}
	j.mu.Unlock()
	return key, nil
}

// stream applies layer i while it downloads into w: one read of the
// network feeds the content writer and the decompressor. The snapshot
// becomes usable only if both the DiffID and the blob's digest match.
func (j *unpackJob) stream(ctx context.Context, i int, w content.Writer) error {
	p, desc := j.p, j.layers[i]
	key, root, err := j.prepare(ctx, i)
	if err != nil {
		return err
	}
	start := time.Now()
	err = func() error {
		body, err := p.openRetrying(ctx, desc, 0)
		if err != nil {
			return err
		}
		defer body.Close()
		bp := newBlobProgress(p.rep, desc, 0)
		bp.state(StateDownloading)
		aw := newAsyncWriter(w, asyncDepth, asyncBufSize)
		defer aw.Close()
		tee := &teeReader{r: body, w: aw, bp: bp}
		diffID, _, aerr := archive.ApplyLayer(ctx, root, tee, desc.MediaType, j.applyOpts(true)...)
		if rerr := tee.readErr(); rerr != nil {
			return rerr // the fetch failed, not the layer
		}
		err = tee.drain()
		if cerr := aw.Close(); err == nil {
			err = cerr
		}
		// The blob's digest first: when the registry sent other bytes,
		// that is what went wrong (FailedPrecondition, as when the blob
		// is committed before it is applied), whatever the diff ID says.
		if err == nil {
			err = p.commitBlob(ctx, w, desc)
		}
		if err == nil && aerr == nil {
			err = j.checkDiffID(i, diffID)
		}
		if err == nil && aerr != nil {
			return j.applyAlone(ctx, i, aerr)
		}
		return err
	}()
	if errors.Is(err, errApplyOver) {
		j.remove(ctx, key)
		p.stats.fetched.Add(1)
		p.stats.fetchedBytes.Add(desc.Size)
		j.setOver(i)
		return nil
	}
	if err != nil {
		j.remove(ctx, key)
		return err
	}
	p.stats.apply.Add(since(start))
	p.stats.fetched.Add(1)
	p.stats.streamed.Add(1)
	p.stats.fetchedBytes.Add(desc.Size)
	j.setApplied(i, key, root)
	return nil
}

// applyFromContent applies layer i from its committed blob into a new
// empty snapshot (rebase only).
func (j *unpackJob) applyFromContent(ctx context.Context, i int) error {
	key, root, err := j.prepare(ctx, i)
	if err != nil {
		return err
	}
	if err := j.applyBlob(ctx, i, root, true); err != nil {
		j.remove(ctx, key)
		if errors.Is(err, errApplyOver) {
			j.setOver(i)
			return nil
		}
		return err
	}
	j.setApplied(i, key, root)
	return nil
}

// errApplyOver says that a layer must be applied over its parents.
var errApplyOver = errors.New("layer needs its parents")

// applyAlone decides what a failed apply of layer i into an empty
// snapshot means: a layer may hard-link a file of a lower layer, which an
// empty snapshot lacks, so it is applied again over its parents
// (errApplyOver), where a hostile layer fails for good. A cancelled ctx
// stays an error.
func (j *unpackJob) applyAlone(ctx context.Context, i int, err error) error {
	if ctx.Err() != nil || !errdefs.IsInvalidArgument(err) {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Layer not applicable alone, applying it over its parents", "digest", j.layers[i].Digest, "err", err)
	return errApplyOver
}

func (j *unpackJob) setOver(i int) {
	j.applied[i] = appliedLayer{over: true}
	close(j.ready[i])
}

// applyBlob applies the committed blob of layer i onto root, alone or
// over its parents, and checks its DiffID.
func (j *unpackJob) applyBlob(ctx context.Context, i int, root string, alone bool) error {
	desc := j.layers[i]
	j.p.rep.emit(Progress{Desc: desc, State: StateUnpacking, Offset: desc.Size, Total: desc.Size})
	start := time.Now()
	ra, err := j.p.s.cs.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, desc.Digest, err)
	}
	defer ra.Close()
	diffID, _, err := archive.ApplyLayer(ctx, root, io.NewSectionReader(ra, 0, ra.Size()), desc.MediaType, j.applyOpts(alone)...)
	if err != nil && alone {
		err = j.applyAlone(ctx, i, err)
	}
	if err != nil {
		return fmt.Errorf("layer %d (%s): %w", i, desc.Digest, err)
	}
	j.p.stats.apply.Add(since(start))
	return j.checkDiffID(i, diffID)
}

func (j *unpackJob) checkDiffID(i int, got digest.Digest) error {
	if got != j.diffIDs[i] {
		return fmt.Errorf("layer %d (%s): content has diff ID %s, config %s says %s: %w",
			i, j.layers[i].Digest, got, j.config.Digest, j.diffIDs[i], errdefs.ErrInvalidArgument)
	}
	return nil
}

func (j *unpackJob) setApplied(i int, key, root string) {
	j.applied[i] = appliedLayer{key: key, root: root, ticket: j.p.s.syncer.applied()}
	j.p.stats.unpacked.Add(1)
	j.p.rep.emit(Progress{Desc: j.layers[i], State: StateDone, Offset: j.layers[i].Size, Total: j.layers[i].Size})
	close(j.ready[i])
}

// commitInOrder commits the applied layers in chain order, each once its
// data is on disk, then points the config at the top snapshot.
func (j *unpackJob) commitInOrder(ctx context.Context) error {
	for i := j.start; i < len(j.layers); i++ {
		select {
		case <-j.ready[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		a := j.applied[i]
		if a.over {
			if err := j.applyOver(ctx, i); err != nil {
				return err
			}
			continue
		}
		if err := j.p.s.syncer.sync(ctx, a.root, a.ticket, &j.p.stats); err != nil {
			return err
		}
		var opts []snapshot.Opt
		if i > 0 {
			opts = append(opts, snapshot.WithParent(j.chainIDs[i-1].String()))
		}
		if err := j.commit(ctx, i, a.key, opts...); err != nil {
			return err
		}
	}
	return j.finish(ctx)
}

// applyInOrder applies the layers one over the other as their blobs
// arrive, for snapshotters that cannot rebase.
func (j *unpackJob) applyInOrder(ctx context.Context) error {
	for i := j.start; i < len(j.layers); i++ {
		select {
		case <-j.ready[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := j.applyOver(ctx, i); err != nil {
			return err
		}
	}
	return j.finish(ctx)
}

// applyOver applies layer i from content onto a snapshot of its parents,
// syncs and commits it. The parents must be committed.
func (j *unpackJob) applyOver(ctx context.Context, i int) error {
	parent := ""
	if i > 0 {
		parent = j.chainIDs[i-1].String()
	}
	key, err := j.prepareKey(ctx, i, parent)
	if err != nil {
		return err
	}
	mounts, err := j.sn.Mounts(ctx, key)
	if err == nil {
		err = mount.WithTempMountIn(ctx, j.p.s.tmpMount, mounts, func(root string) error {
			if err := j.applyBlob(ctx, i, root, false); err != nil {
				return err
			}
			start := time.Now()
			defer func() { j.p.stats.sync.Add(since(start)) }()
			return archive.SyncFS(root)
		})
	}
	if err != nil {
		j.remove(ctx, key)
		return err
	}
	j.p.stats.unpacked.Add(1)
	j.p.rep.emit(Progress{Desc: j.layers[i], State: StateDone, Offset: j.layers[i].Size, Total: j.layers[i].Size})
	return j.commit(ctx, i, key)
}

// commit commits key as the ChainID of layer i. Should another pull have
// committed that ChainID first, ours is dropped.
func (j *unpackJob) commit(ctx context.Context, i int, key string, opts ...snapshot.Opt) error {
	start := time.Now()
	defer func() { j.p.stats.commit.Add(since(start)) }()
	err := j.sn.Commit(ctx, j.chainIDs[i].String(), key, opts...)
	if errdefs.IsAlreadyExists(err) {
		j.remove(ctx, key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("layer %d (%s): commit: %w", i, j.layers[i].Digest, err)
	}
	j.mu.Lock()
	delete(j.active, key)
	j.mu.Unlock()
	return nil
}

// finish labels the config with the top snapshot, so that the image keeps
// its unpacked layers.
func (j *unpackJob) finish(ctx context.Context) error {
	if len(j.layers) == 0 {
		return nil
	}
	key := meta.GCRefSnapshotLabel(j.p.s.cfg.Snapshotter, "")
	info := content.Info{Digest: j.config.Digest, Labels: map[string]string{key: j.chainIDs[len(j.chainIDs)-1].String()}}
	if _, err := j.p.s.cs.Update(ctx, info, "labels."+key); err != nil {
		return fmt.Errorf("config %s: label the snapshot: %w", j.config.Digest, err)
	}
	klog.FromContext(ctx).V(2).Info("Image unpacked", "config", j.config.Digest, "chainID", j.chainIDs[len(j.chainIDs)-1], "layers", len(j.layers), "skipped", j.start)
	return nil
}

// remove removes the active snapshot key, under a fresh context.
func (j *unpackJob) remove(ctx context.Context, key string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := j.sn.Remove(cctx, key); err != nil && !errdefs.IsNotFound(err) {
		klog.FromContext(ctx).Error(err, "Remove of an unpack snapshot", "key", key)
		return
	}
	j.mu.Lock()
	delete(j.active, key)
	j.mu.Unlock()
}

// removeActive removes every snapshot the job prepared and did not commit.
func (j *unpackJob) removeActive(ctx context.Context) {
	j.mu.Lock()
	keys := make([]string, 0, len(j.active))
	for k := range j.active {
		keys = append(keys, k)
	}
	j.mu.Unlock()
	for _, k := range keys {
		j.remove(ctx, k)
	}
}

// syncer coalesces syncfs calls: a commit needs a sync that started after
// its layer was applied, and one sync serves every layer applied before
// it started.
type syncer struct {
	seq    atomic.Uint64 // tickets handed out
	mu     sync.Mutex    // serialises syncs; guards synced
	synced uint64        // every ticket up to this one is on disk
}

// applied returns the ticket of a layer whose apply just finished.
func (s *syncer) applied() uint64 { return s.seq.Add(1) }

// sync returns once the data of ticket is on disk.
func (s *syncer) sync(ctx context.Context, root string, ticket uint64, st *stats) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.synced >= ticket {
		return nil
	}
	upto := s.seq.Load()
	start := time.Now()
	err := archive.SyncFS(root)
	st.sync.Add(since(start))
	if err != nil {
		return err
	}
	s.synced = upto
	return nil
}
