package archive

// WhiteoutMode says how the whiteout entries of a layer are applied. It is
// WhiteoutDelete or WhiteoutOverlay.
type WhiteoutMode interface{ whiteoutMode() }

// WhiteoutDelete applies whiteouts by deleting: ".wh.name" removes name,
// and ".wh..wh..opq" removes what lower layers put in its directory. It is
// for a tree that already shows the lower layers: a mounted overlay or a
// native (copied) snapshot. It is the default.
type WhiteoutDelete struct{}

// WhiteoutOverlay applies whiteouts the way overlayfs stores them, for
// writing straight into an upper directory that is not mounted:
// ".wh.name" becomes a character device 0/0 called name, and
// ".wh..wh..opq" sets the opaque xattr on its directory.
type WhiteoutOverlay struct {
	// UserXattr marks opaque directories with user.overlay.opaque instead
	// of trusted.overlay.opaque, for overlays mounted with "userxattr"
	// (rootless).
	UserXattr bool
}

func (WhiteoutDelete) whiteoutMode()  {}
func (WhiteoutOverlay) whiteoutMode() {}

// ApplyOpt configures Apply and ApplyLayer.
type ApplyOpt func(*applyOptions)

type applyOptions struct {
	whiteouts WhiteoutMode
	maxSize   int64 // 0: unbounded
	noChown   bool
}

// WithWhiteoutMode sets how whiteouts are applied; the default is
// WhiteoutDelete.
func WithWhiteoutMode(m WhiteoutMode) ApplyOpt {
	return func(o *applyOptions) { o.whiteouts = m }
}

// WithMaxSize bounds the bytes of regular-file content a layer may write,
// and for ApplyLayer the bytes that trail the tar stream, against
// decompression bombs. Zero or less means no bound.
func WithMaxSize(n int64) ApplyOpt {
	return func(o *applyOptions) { o.maxSize = max(n, 0) }
}

// WithNoSameOwner leaves every entry owned by the applying user instead of
// the owner recorded in the layer, for unprivileged use.
func WithNoSameOwner() ApplyOpt {
	return func(o *applyOptions) { o.noChown = true }
}

func newOptions(opts []ApplyOpt) applyOptions {
	o := applyOptions{whiteouts: WhiteoutDelete{}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.whiteouts == nil {
		o.whiteouts = WhiteoutDelete{}
	}
	return o
}
