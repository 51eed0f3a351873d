// Command content ingests one file into a local content store the way a
// pull does (content.WriteBlob: OpenWriter, Copy, Commit with its fsync)
// and prints the seconds it took. run.sh compares it with dd.
//
// Usage: content -root DIR -src FILE -digest sha256:... [-keep]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	root := flag.String("root", "", "content store root (on the disk to measure)")
	src := flag.String("src", "", "file to ingest")
	dgst := flag.String("digest", "", "expected digest of the file")
	keep := flag.Bool("keep", false, "keep the blob instead of deleting it after the run")
	flag.Parse()
	if err := run(context.Background(), *root, *src, digest.Digest(*dgst), *keep); err != nil {
		fmt.Fprintln(os.Stderr, "content:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root, src string, dgst digest.Digest, keep bool) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	cs, err := local.NewStore(root)
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{Digest: dgst, Size: fi.Size()}
	start := time.Now()
	if err := content.WriteBlob(ctx, cs, "bench-"+dgst.String(), f, desc); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Printf("%.6f\n", elapsed.Seconds())
	if keep {
		return nil
	}
	return cs.Delete(ctx, dgst)
}
