// Package archive owns the application of image layers to a directory: it
// reads a layer's tar stream (decompressed by the compression
// sub-package), creates every entry beneath a root it never escapes,
// applies whiteouts either by deleting (a mounted overlay or a native
// snapshot) or as overlayfs whiteout devices and opaque xattrs (an overlay
// upper directory written directly), and computes the layer's DiffID in
// the same pass.
//
// # Containment
//
// Layers are hostile input. Every directory an entry is written into is
// resolved through an os.Root opened on the target, so no path, symlink or
// ".." can lead outside it; the leaf is then created by a single-component
// *at system call on the directory's descriptor with O_EXCL or O_NOFOLLOW
// semantics, so an entry replaces a symlink planted by an earlier entry
// instead of writing through it. Symlinks that stay inside the root are
// followed when they are parents of later entries, as containerd and
// Docker do; absolute ones and ones that climb out are refused. Whiteouts
// are stricter: the path to what they delete must not pass through any
// symlink, since a legitimate diff names what it deletes by its real path.
// Entry names that climb out with ".." are refused; absolute names are
// taken relative to the root.
//
// # Speed
//
// No file is synced (the caller calls SyncFS once per layer); regular files
// are written and given their metadata through their open descriptor; the
// descriptors of recently used directories are cached so that an entry
// costs no path walk; one 1 MiB copy buffer serves a whole layer. Large
// files start their writeback when written and leave the page cache once
// it is done (behind.go).
//
// This package imports only leaves of the project (errdefs).
package archive
