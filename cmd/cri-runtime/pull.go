package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
	"github.com/cri-runtime/cri-runtime/pkg/image/remote"
)

// pullFlags are the flags of `pull`.
type pullFlags struct {
	platforms []string
	all       bool
	user      string
	quiet     bool
}

func newPullCommand(g *globals) *cobra.Command {
	var f pullFlags
	cmd := &cobra.Command{
		Use:   "pull [--platform P]... [--all-platforms] [--user USER[:PASS]] [--quiet] REF",
		Short: "Pull an image: fetch, unpack and record it",
		Long: "Pull an image through the daemon, showing the progress of each blob: bars on a terminal,\n" +
			"one line per change of state otherwise. Credentials come from --user (without :PASS the\n" +
			"password is read from stdin), else from the Docker config file (~/.docker/config.json,\n" +
			"or $DOCKER_CONFIG/config.json).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPull(cmd, g, f, args[0])
		},
	}
	cmd.Flags().StringArrayVar(&f.platforms, "platform", nil, "platform os/arch[/variant] to pull (repeatable; default: the daemon's)")
	cmd.Flags().BoolVar(&f.all, "all-platforms", false, "fetch the manifests of every platform")
	cmd.Flags().StringVarP(&f.user, "user", "u", "", "registry credentials USER[:PASS]")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the image name")
	return cmd
}

func runPull(cmd *cobra.Command, g *globals, f pullFlags, ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return err
	}
	cred, err := pullCredential(cmd, f.user, named.Domain)
	if err != nil {
		return err
	}
	ctx, c, err := g.connect(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	var opts []client.PullOpt
	for _, p := range f.platforms {
		opts = append(opts, client.WithPlatform(p))
	}
	if f.all {
		opts = append(opts, client.WithAllPlatforms())
	}
	if cred != nil {
		opts = append(opts, client.WithCredential(*cred))
	}
	out := cmd.OutOrStdout()
	var sum client.PullSummary
	opts = append(opts, client.WithPullSummary(func(s client.PullSummary) { sum = s }))
	if f.quiet {
		img, err := c.Pull(ctx, ref, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, img.Name)
		return nil
	}
	var disp pullDisplay = newPlainDisplay(out)
	if isTerminal(out) {
		disp = newBarDisplay(ctx, out)
	}
	start := time.Now()
	var resumed resumes
	_, err = c.Pull(ctx, ref, append(opts, client.WithPullProgress(func(p client.PullProgress) {
		resumed.update(p)
		disp.update(p)
	}))...)
	disp.finish(err == nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, summaryLine(sum, time.Since(start), resumed))
	return nil
}

// resumes are the downloads of a pull that resumed an interrupted one,
// in the order they started, and the offset each resumed from.
type resumes []resume

type resume struct {
	dgst digest.Digest
	at   int64
}

func (r *resumes) update(p client.PullProgress) {
	if p.Resumed <= 0 {
		return
	}
	for _, x := range *r {
		if x.dgst == p.Desc.Digest {
			return
		}
	}
	*r = append(*r, resume{dgst: p.Desc.Digest, at: p.Resumed})
}

// pullDisplay shows the progress of a pull.
type pullDisplay interface {
	update(p client.PullProgress)
	// finish ends the display; ok is false when the pull failed.
	finish(ok bool)
}

// summaryLine is the last line of a pull:
// "pulled NAME (DIGEST) 5.2 MB in 1.3 s (4.0 MB/s)", the bytes being those
// received from the registry, followed by the blobs that were not fetched
// (present, or layers already unpacked) and the downloads that resumed.
func summaryLine(sum client.PullSummary, wall time.Duration, resumed resumes) string {
	elapsed := sum.Elapsed
	if elapsed <= 0 {
		elapsed = wall
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(sum.FetchedBytes) / s
	}
	line := fmt.Sprintf("pulled %s (%s) %s in %.1f s (%s/s)", sum.Image.Name, sum.Image.Target.Digest,
		decimalSize(sum.FetchedBytes), elapsed.Seconds(), decimalSize(int64(rate)))
	if sum.Existing > 0 {
		line += fmt.Sprintf(", %d of %d blobs present already", sum.Existing, sum.Fetched+sum.Existing)
	}
	for _, r := range resumed {
		line += fmt.Sprintf(", %s resumed at %s", shortDigest(r.dgst), decimalSize(r.at))
	}
	return line
}

// pullCredential returns the credential for registry host: from --user,
// else from the Docker config file; nil for none.
func pullCredential(cmd *cobra.Command, user, host string) (*client.Credential, error) {
	if user != "" {
		name, pass, ok := strings.Cut(user, ":")
		if !ok {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && (err != io.EOF || line == "") {
				return nil, fmt.Errorf("--user %s: no password on stdin: %w", name, errdefs.ErrInvalidArgument)
			}
			pass = strings.TrimRight(line, "\r\n")
		}
		return &client.Credential{Username: name, Password: pass}, nil
	}
	fn, err := remote.DockerConfigCredentials("")
	if err != nil {
		return nil, err
	}
	if host == reference.DefaultDomain {
		host = "registry-1.docker.io" // the key the Docker config uses for Docker Hub
	}
	cred, err := fn(cmd.Context(), host)
	if err != nil {
		return nil, fmt.Errorf("docker config credentials for %s: %w: %w", host, err, errdefs.ErrInvalidArgument)
	}
	if cred == auth.EmptyCredential {
		return nil, nil
	}
	return &client.Credential{Username: cred.Username, Password: cred.Password, RefreshToken: cred.RefreshToken, AccessToken: cred.AccessToken}, nil
}

// isTerminal reports whether w is a terminal with a size, which the bars
// need (mpb renders nothing on a pty of 0 rows or columns).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0 && ws.Row > 0
}

// decimalSize formats n bytes in SI units: "999 B", "5.2 MB".
func decimalSize(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1000, 0
	for v >= 999.95 && unit < 5 {
		v /= 1000
		unit++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"kB", "MB", "GB", "TB", "PB", "EB"}[unit])
}
